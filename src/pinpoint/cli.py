"""The `pinpoint` command: parses words, calls the same functions as the Python API.

Bad input surfaces as one line `pinpoint: error: FILE[:LINE]: what is wrong` and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Callable, NoReturn, Sequence

from pinpoint.config import COUNT, PRETRAINED, RULES, SCORE, Rule, TrainConfig, choices_of
from pinpoint.errors import InputError


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.run(args) or 0)
    except InputError as exc:
        print(f"pinpoint: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pinpoint: interrupted", file=sys.stderr)
        return 130


def warn(verb: str, lines: Sequence[str]) -> None:
    """Things a user must know about a finished run that did not stop it, on stderr."""
    for line in lines:
        print(f"pinpoint {verb}: warning: {line}", file=sys.stderr)


WEIGHTS_HELP = "a checkpoint written by train, or its exported .onnx (default: the pretrained model shipped with pinpoint)"
DEVICE_HELP = "auto (the first GPU if there is one, else the CPU), cpu, cuda or cuda:N"


class OptionError(InputError):
    """A command line argparse refuses: one line, like every other pinpoint error."""


class Parser(argparse.ArgumentParser):
    """argparse with pinpoint's one-line errors: `pinpoint: error: --epochs 0: must be ...` instead of
    a usage block, so a refused option reads like any other refused input."""

    def error(self, message: str) -> NoReturn:
        message = re.sub(r"^argument ([^:]+): ", r"\1 ", message)
        raise OptionError(f"{message} (see {self.prog} --help)")


class VerbParser(Parser):
    """A verb's parser: its help shows the defaults (ShowDefaults)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, formatter_class=ShowDefaults, **kwargs)


class ShowDefaults(argparse.HelpFormatter):
    """Help that ends each option's text with its default, unless the text already says it: a user
    reading `pinpoint train -h` should not need the source to know what an option is left at."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        unset = action.default is None or action.default is False or action.default in ("", argparse.SUPPRESS)
        if "default" in text or not action.option_strings or unset:  # store_true flags and unset paths say nothing
            return text
        shown = " ".join(map(str, action.default)) if isinstance(action.default, (list, tuple)) else str(action.default)
        return f"{text} (default {shown.replace('%', '%%')})"  # as typed on the command line; help is %-formatted


def number(rule: Rule) -> Callable[[str], int | float]:
    """An argparse type that parses and checks a value by `rule`: `--epochs 0` and `--lr nan` are
    refused when the command line is read, before anything runs."""

    def parse(text: str) -> int | float:
        try:
            return rule.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{text}: {exc}") from None

    parse.__name__ = rule.describe()  # what argparse would call the type
    return parse


def setting(name: str) -> Callable[[str], int | float]:
    """The argparse type of a training setting, by its limits in config.RULES."""
    return number(RULES[name])


POSITIVE = number(COUNT)
DISTANCE = number(Rule(float, 0, 10_000, low_open=True))  # pixels: larger than any frame, and finite to compute with
SEED = number(Rule(int, 0))
THREADS = number(Rule(int, 1, 1024))  # past a thousand or so, starting the threads themselves fails
SIDE = number(Rule(int, 1, 8192))  # synthetic images: 8192 x 8192 float32 is 256 MB, 100000 x 100000 would be 37 GB


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="pinpoint", description="Find tiny infrared targets as points.")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB", parser_class=VerbParser)
    for add in (add_synth, add_train, add_eval, add_detect, add_track, add_export, add_bench, add_convert, add_annotate, add_demo):
        add(verbs)
    return parser


def add_synth(verbs) -> None:
    p = verbs.add_parser("synth", help="write a synthetic infrared dataset (images/, labels/, splits/) or videos (--video)")
    p.add_argument("out", help="output folder")
    p.add_argument("--n", type=POSITIVE, help="number of images (default 200), or of videos with --video (default 4)")
    p.add_argument("--video", action="store_true", help="write 320x256 videos with moving targets (videos/, labels/NAME.csv "
                   "in drone-ir's format, splits/) instead of images")
    p.add_argument("--frames", type=number(Rule(int, 2)), default=90, help="frames per video (default 90)")
    p.add_argument("--seed", type=SEED, default=0, help="random seed of the images and targets")
    p.add_argument("--min-size", type=SIDE, default=160, help="smallest side length in pixels")
    p.add_argument("--max-size", type=SIDE, default=320, help="largest side length in pixels")
    p.add_argument("--splits", type=number(Rule(float, 0)), nargs=3, default=(0.6, 0.2, 0.2), metavar=("TRAIN", "VAL", "TEST"),
                   help="shares of the train/val/test split files")
    p.set_defaults(run=run_synth)


def add_train(verbs) -> None:
    d, choices = TrainConfig(), choices_of()
    p = verbs.add_parser("train", help="train a model on a folder of images with point labels",
                         usage="pinpoint train --data DIR [options]  |  pinpoint train --resume RUN_DIR",
                         epilog="Several processes: torchrun --nproc-per-node N -m pinpoint train ... "
                                "When to touch what: docs/user-guide.md.")
    g = p.add_argument_group("data")
    g.add_argument("--data", metavar="DIR", help="images/+labels/, videos/+labels/ or datasets.toml")
    g.add_argument("--split", metavar="FILE", help="training stems (default: every image)")
    g.add_argument("--val-split", metavar="FILE", help="validation stems (default: 10%% of the training ones)")
    g.add_argument("--every", type=setting("every"), default=d.every, metavar="K", help="videos: every K-th labelled frame")
    g.add_argument("--skip-bad", action="store_true", help="leave out unreadable files, listed at the end")
    g.add_argument("--out", metavar="DIR", default=d.out, help="run folder (default: the first free runs/trainN)")
    g.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    g = p.add_argument_group("model")
    g.add_argument("--model", default=d.model, choices=choices["model"], metavar="NAME",
                   help="see docs/user-guide.md, Models")
    g.add_argument("--init", default=d.init, metavar="CKPT", help="fine-tune from this checkpoint (same --model); "
                   "pretrained: the model shipped with pinpoint")
    g.add_argument("--sigma", type=setting("sigma"), default=d.sigma, metavar="PX", help="heatmap target's gaussian width")
    g.add_argument("--blob-sigma", type=setting("blob_sigma"), default=d.blob_sigma, metavar="K",
                   help="gaussian >= K x blob radius; 0 = off")
    g.add_argument("--loss", default=d.loss, choices=choices["loss"], metavar="NAME", help="focal or mse")
    g = p.add_argument_group("augmentation")
    g.add_argument("--crop-size", type=setting("crop_size"), default=d.crop_size, metavar="PX",
                   help="crops at native size (half near targets)")
    g.add_argument("--img-size", type=setting("img_size"), default=d.img_size, metavar="PX",
                   help="resize to PX x PX instead; 0 = crops")
    g.add_argument("--synth-targets", type=setting("synth_targets"), default=d.synth_targets, metavar="P",
                   help="share of crops given synthetic targets")
    g = p.add_argument_group("schedule")
    g.add_argument("--epochs", type=setting("epochs"), default=d.epochs, metavar="N", help="passes over the images")
    g.add_argument("--batch", type=setting("batch"), default=d.batch, metavar="N", help="global batch size")
    g.add_argument("--epoch-size", type=setting("epoch_size"), default=d.epoch_size, metavar="N",
                   help="per epoch from a dataset file; 0 = all")
    g.add_argument("--lr", type=setting("lr"), default=d.lr, help="peak learning rate (Adam)")
    g.add_argument("--schedule", default=d.schedule, choices=choices["schedule"], metavar="NAME", help="cosine or step")
    g.add_argument("--lr-step", type=setting("lr_step"), default=d.lr_step, metavar="N", help="epochs between drops (step)")
    g.add_argument("--lr-gamma", type=setting("lr_gamma"), default=d.lr_gamma, metavar="F", help="factor at each drop (step)")
    g.add_argument("--ema", type=setting("ema"), default=d.ema, metavar="D", help="weight-average decay; 0 = off")
    g.add_argument("--seed", type=setting("seed"), default=d.seed, metavar="N", help="seed of weights, crops, validation")
    g = p.add_argument_group("decoding (stored in the checkpoint)")
    g.add_argument("--nms-kernel", type=setting("nms_kernel"), default=d.nms_kernel, metavar="K", help="odd peak window")
    g.add_argument("--snap", action=argparse.BooleanOptionalAction, default=d.snap, help="snap points to blob centroids")
    g.add_argument("--threshold-smoothing", type=setting("threshold_smoothing"), default=d.threshold_smoothing, metavar="W",
                   help="cut where F1 averaged over +-W is highest")
    g.add_argument("--tta", action="store_true", help="average 8 turned and mirrored views (8x slower)")
    g = p.add_argument_group("devices and reliability")
    g.add_argument("--device", default=d.device, metavar="DEV", help="auto, cpu, cuda or cuda:N")
    g.add_argument("--amp", default=d.amp, choices=choices["amp"], metavar="NAME", help="auto, off, bf16 or fp16")
    g.add_argument("--no-channels-last", action="store_true", help="keep NCHW on CUDA")
    g.add_argument("--workers", type=setting("workers"), default=d.workers, metavar="N", help="data-loading processes")
    g.add_argument("--deterministic", action="store_true", help="bit-identical on the CPU (slower)")
    g.add_argument("--save-every-steps", type=setting("save_every_steps"), default=d.save_every_steps, metavar="K",
                   help="also save last.pt every K batches")
    g.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last.pt")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run_train)


def add_eval(verbs) -> None:
    p = verbs.add_parser("eval", help="score a model, a classical method or a folder of predictions against labels")
    p.add_argument("--data", required=True, help="folder with images/ and labels/, or with videos/ and labels/NAME.csv "
                   "(every labelled frame is scored)")
    p.add_argument("--split", help="file of stems (or video names) to score (default: all)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--pred", help="folder of predicted label files (x y score)")
    source.add_argument("--weights", help=WEIGHTS_HELP)
    source.add_argument("--method", help="a training-free method: tophat or local-contrast")
    add_decoding_overrides(p)
    p.add_argument("--dist", type=DISTANCE, nargs="+", help="matching distances in pixels (default 3; 5 with --track)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--track", action="store_true", help="videos: also track (the tracker options below) and score the "
                   "tracks: per-frame scores of the detector alone and of the tracker, MOTA, IDF1, HOTA, id switches; "
                   "per range when DATA/videos.csv gives one (default --dist 5)")
    p.add_argument("--report", metavar="DIR", help="also write to DIR: pr.png and pr.csv (the PR curves), per_image.csv, "
                   "scores.json and mistakes/NAME.png (hits green, false alarms yellow, misses red; at the first --dist)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    add_tracker_options(p)
    p.set_defaults(run=run_eval)


def add_detect(verbs) -> None:
    p = verbs.add_parser("detect", help="find points in images, folders, globs, lists or videos; write labels, tables, pictures, video")
    model = p.add_mutually_exclusive_group()
    model.add_argument("--weights", help=WEIGHTS_HELP)
    model.add_argument("--method", help="a training-free method: tophat or local-contrast")
    p.add_argument("--source", required=True,
                   help="an image, a folder of images, a dataset folder with images/, a quoted glob ('frames/*.png'), "
                        "a .txt list of image paths, or a video (.mp4, .avi, .mkv, .mov)")
    p.add_argument("--split", help="file of stems to restrict a folder to")
    p.add_argument("--save-txt", help="folder for one label file per image (x y score)")
    p.add_argument("--save-vis", help="folder for pictures: JET heatmap over the image with the points")
    add_decoding_overrides(p)
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--skip-bad", action="store_true", help="leave out images that cannot be read instead of stopping; listed at the end")
    p.add_argument("--save-csv", help="CSV file of every point: frame, name, x, y (pixels), score; - for standard output, "
                   "where it goes when no --save-* option is given")
    p.add_argument("--save-json", help="JSON file of every frame with its points (pixels and scores); - for standard output")
    p.add_argument("--save-video", help="annotated video (.mp4 or .mkv: mp4v, .avi: MJPG) at the source's frame rate")
    p.add_argument("--batch", type=POSITIVE, help="frames of one size sent through the network together (default: 1 on the CPU, 8 on a GPU)")
    p.add_argument("--threads", type=THREADS, help="intra-op CPU threads (default: the library's own, one per core)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run_detect)


def add_tracker_options(p: argparse.ArgumentParser) -> None:
    """The tracker's settings (tracking.TrackerSettings), for `track` and `eval --track`."""
    from pinpoint.tracking.tracker import MAX_DISTANCE_PX, MAX_FRAMES, MAX_TRACK_SCORE, TrackerSettings

    d = TrackerSettings()
    g = p.add_argument_group("tracker (defaults chosen on held-out drone-ir training videos)")
    g.add_argument("--gate", type=number(Rule(float, 0, MAX_DISTANCE_PX, low_open=True)), metavar="PX",
                   help=f"farthest a point may lie from a track's predicted position to continue it (default {d.gate_px:g})")
    g.add_argument("--confirm", type=DISTANCE, nargs=2, metavar=("M", "N"),
                   help=f"a track is confirmed once seen in M of its last N frames (default {d.confirm_hits:g} "
                   f"{d.confirm_window}); a point below the threshold counts its score over the threshold")
    g.add_argument("--max-missed", type=number(Rule(int, 0, MAX_FRAMES)), metavar="K",
                   help=f"frames a track may go unseen and continue; a gap that closes is bridged (default {d.max_missed})")
    g.add_argument("--candidates", type=number(Rule(float, 0, 1, low_open=True)), metavar="F",
                   help="also follow points down to F x the threshold, so that a target its track "
                   f"has confirmed continues through its faint frames (default {d.candidates:g}; 1: none fainter)")
    g.add_argument("--track-score", type=number(Rule(float, 0, MAX_TRACK_SCORE)), metavar="S",
                   help="a track is reported while the mean score of its points is at least S x the threshold: "
                   f"clutter that lasts but hovers near the threshold is dropped (default {d.track_score:g}; 0: off)")


TRACKER_OPTIONS = {"gate": "--gate", "confirm": "--confirm", "max_missed": "--max-missed", "candidates": "--candidates",
                   "track_score": "--track-score"}


def tracker_settings(args: argparse.Namespace):
    """The TrackerSettings of the options given, the defaults for the others."""
    import dataclasses

    from pinpoint.tracking.tracker import MAX_FRAMES, TrackerSettings

    settings = TrackerSettings()
    if args.confirm is not None:
        hits, window = args.confirm
        if window != int(window) or not 0 < hits <= window <= MAX_FRAMES:
            raise InputError(f"--confirm {hits:g} {window:g}: N is a whole number of frames and 0 < M <= N <= {MAX_FRAMES}")
        settings = dataclasses.replace(settings, confirm_hits=hits, confirm_window=int(window))
    given = {"gate_px": args.gate, "max_missed": args.max_missed, "candidates": args.candidates,
             "track_score": args.track_score}
    return dataclasses.replace(settings, **{k: v for k, v in given.items() if v is not None})


def add_track(verbs) -> None:
    p = verbs.add_parser("track", help="detect on every frame of a video and follow the points: tracks with ids")
    p.add_argument("--source", required=True, help="a video, a folder of frames, a quoted glob, or a folder of videos "
                   "(or a dataset folder with videos/): each video tracked on its own")
    model = p.add_mutually_exclusive_group()
    model.add_argument("--weights", help=WEIGHTS_HELP)
    model.add_argument("--method", help="a training-free method: tophat or local-contrast")
    p.add_argument("--save-csv", help="CSV of every tracked point: frame,track,x,y,score (empty score: predicted over a gap); "
                   "a folder of NAME.csv for several videos; - for standard output")
    p.add_argument("--save-mot", help="MOTChallenge text file (a folder of NAME.txt for several videos; - for standard output)")
    p.add_argument("--save-video", help="annotated video with ids and trails (.mp4, .mkv, .avi; a folder of NAME.mp4 for several)")
    p.add_argument("--conf", type=number(SCORE), help="detection threshold in [0, 1] (default: the checkpoint's own)")
    add_tracker_options(p)
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--threads", type=THREADS, help="intra-op CPU threads (default: the library's own, one per core)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run_track)


def add_export(verbs) -> None:
    p = verbs.add_parser("export", help="export a checkpoint to ONNX (checked against PyTorch) for onnxruntime")
    p.add_argument("--weights", default=PRETRAINED, help="a checkpoint written by train (default: the pretrained model)")
    p.add_argument("--format", default="onnx", choices=["onnx"], help="export format")
    p.add_argument("--out", help="the .onnx file to write (default: the checkpoint's name with .onnx; pretrained.onnx here "
                   "for the pretrained model)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset")
    p.set_defaults(run=run_export)


def add_bench(verbs) -> None:
    p = verbs.add_parser("bench", help="parameters, FLOPs, latency and throughput in PyTorch eager and onnxruntime")
    model = p.add_mutually_exclusive_group()
    model.add_argument("--weights", help=WEIGHTS_HELP)
    model.add_argument("--model", choices=choices_of()["model"], metavar="NAME",
                       help="a model name, with random weights (they run as fast as trained ones)")
    p.add_argument("--size", nargs="+", default=["256"], help="input sizes: N for NxN or HxW, e.g. 256 360x480")
    p.add_argument("--batch", type=POSITIVE, nargs="+", default=[1, 8], help="batch sizes (default 1 8); latency is read at 1")
    p.add_argument("--threads", type=THREADS, nargs="+",
                   help="intra-op thread counts, each measured for both backends, e.g. 1 2 (default: torch's, one per core)")
    p.add_argument("--backend", nargs="+", default=["torch", "onnxruntime"], choices=["torch", "onnxruntime"], help="backends to time")
    p.add_argument("--seconds", type=number(Rule(float, 0, 3600, low_open=True)), default=3.0,
                   help="timing budget per size, batch and backend (default 3)")
    p.add_argument("--decode", action="store_true", help="time forward + peak decoding instead of the forward alone")
    p.add_argument("--tta", action="store_true",
                   help="time the average over the model's turned and mirrored views (detect --tta), one pass per view")
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.set_defaults(run=run_bench)


def add_convert(verbs) -> None:
    p = verbs.add_parser("convert", help="convert datasets: masks -> labels, labels <-> COCO keypoints")
    kinds = p.add_subparsers(dest="kind", required=True, metavar="KIND", parser_class=VerbParser)
    c = kinds.add_parser("masks", help="binary target masks -> point labels (8-connected component centroids)")
    c.add_argument("--masks", required=True, help="folder of mask images")
    c.add_argument("--out", required=True, help="folder for the label files")
    c.add_argument("--threshold", type=number(Rule(float)), default=0.0, help="a pixel is target when mask > threshold (default 0)")
    c.add_argument("--suffix", default="", help="strip this from mask names, e.g. _pixels0")
    c.set_defaults(run=run_convert)
    c = kinds.add_parser("labels-to-coco", help="a dataset folder -> one COCO keypoints JSON")
    c.add_argument("--data", required=True, help="folder with images/ and labels/")
    c.add_argument("--out", required=True, help="the JSON file to write")
    c.add_argument("--category", default="target", help="COCO category name of the points")
    c.set_defaults(run=run_convert)
    c = kinds.add_parser("coco-to-labels", help="a COCO keypoints JSON (CVAT, Label Studio, ...) -> label files")
    c.add_argument("--coco", required=True, help="the COCO JSON file")
    c.add_argument("--out", required=True, help="folder for the label files")
    c.add_argument("--images", help="images folder, to check the JSON's sizes and fill in missing ones (default: images/ beside --out)")
    c.add_argument("--category", help="keep only this category name")
    c.set_defaults(run=run_convert)


def add_annotate(verbs) -> None:
    p = verbs.add_parser("annotate", help="label points in the browser (click, zoom, undo; a model's suggestions)")
    p.add_argument("data_dir", help="folder with images/ (labels/ is created and written there)")
    suggestions = p.add_mutually_exclusive_group()
    suggestions.add_argument("--weights", default=PRETRAINED, help="a checkpoint whose predictions are shown as suggestions "
                             "and in the review view (default: the pretrained model)")
    suggestions.add_argument("--no-suggestions", action="store_true", help="no model and no suggestions")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=number(Rule(int, 0, 65535)), default=8000, help="port to serve on (0: any free port)")
    p.add_argument("--open", action="store_true", help="open the page in the default browser")
    p.add_argument("--train-epochs", type=setting("epochs"), default=100, metavar="N",
                   help="epochs of the page's \"train on my labels\" (pinpoint train --init WEIGHTS on the labelled "
                   "images, into runs/annotate; default 100)")
    p.set_defaults(run=run_annotate)


def add_demo(verbs) -> None:
    p = verbs.add_parser("demo", help="synth -> train -> eval -> detect on built-in synthetic data")
    p.add_argument("--out", help="folder for everything the demo makes (default: the first free one of pinpoint-demo, "
                   "pinpoint-demo2, ...)")
    p.add_argument("--n", type=number(Rule(int, 10)), default=240, help="synthetic images")
    p.add_argument("--epochs", type=setting("epochs"), default=80, help="training epochs (default 80: about 3 minutes on 2 CPU cores)")
    p.add_argument("--model", default=TrainConfig.model, choices=choices_of()["model"], metavar="NAME",
                   help="model to train (default: the default model)")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the data and the training")
    p.set_defaults(run=run_demo)


def add_decoding_overrides(p: argparse.ArgumentParser) -> None:
    """--conf, --tta, --snap and --max-points of eval and detect: each replaces the checkpoint's own setting when given."""
    p.add_argument("--conf", type=number(SCORE), help="score threshold in [0, 1] (default: the checkpoint's own)")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                   help="average heatmaps over the image's turned and mirrored views (those the model was trained on: "
                        "8 with the default recipe, 8x slower); --no-tta turns it off; default: the checkpoint's setting")
    p.add_argument("--snap", action=argparse.BooleanOptionalAction, default=None,
                   help="move each point to the centroid of the bright blob it sits on (points on one blob become one); "
                        "default: the checkpoint's setting")
    p.add_argument("--max-points", type=POSITIVE, metavar="N",
                   help="at most N points per image, the best kept; an image that reaches it is reported "
                        "(default: the checkpoint's, 100; a training-free --method keeps every point)")


def run_synth(args: argparse.Namespace) -> int:
    from pinpoint.data.synth import synthesize
    from pinpoint.outputs import prepare_output_folder

    started = time.time()
    prepare_output_folder(args.out, "OUT")
    if args.video:
        from pinpoint.data.synth_video import synthesize_videos

        tracks = synthesize_videos(args.out, n=args.n or 4, frames=args.frames, seed=args.seed)
        print(f"pinpoint synth: {len(tracks)} videos of {args.frames} frames with {sum(map(len, tracks.values()))} tracks "
              f"in {args.out} ({time.time() - started:.1f}s); splits in {Path(args.out) / 'splits'}")
        return 0
    try:
        out = synthesize(args.out, n=args.n or 200, seed=args.seed, min_size=args.min_size, max_size=args.max_size,
                         splits=tuple(args.splits))
    except ValueError as exc:
        raise InputError(f"{args.out}: {exc}") from None
    print(f"pinpoint synth: {args.n or 200} images in {out} ({time.time() - started:.1f}s); splits in {Path(out) / 'splits'}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from pinpoint.train import resume, train

    if args.resume:
        resume(args.resume, device=args.device, workers=args.workers, progress=not args.no_progress)
        return 0
    if not args.data:
        raise InputError("--data: required (a folder with images/ and labels/), unless --resume RUN_DIR")
    cfg = TrainConfig(data=args.data, split=args.split, val_split=args.val_split, every=args.every,
                      epoch_size=args.epoch_size, synth_targets=args.synth_targets,
                      out=args.out, overwrite=args.overwrite,
                      skip_bad=args.skip_bad, model=args.model, init=args.init, sigma=args.sigma, blob_sigma=args.blob_sigma,
                      loss=args.loss, crop_size=args.crop_size, img_size=args.img_size, epochs=args.epochs, batch=args.batch,
                      lr=args.lr, schedule=args.schedule, lr_step=args.lr_step, lr_gamma=args.lr_gamma, ema=args.ema,
                      seed=args.seed, nms_kernel=args.nms_kernel, snap=args.snap, threshold_smoothing=args.threshold_smoothing,
                      tta=args.tta, device=args.device, amp=args.amp, channels_last=not args.no_channels_last,
                      workers=args.workers, deterministic=args.deterministic, save_every_steps=args.save_every_steps,
                      progress=not args.no_progress)
    train(cfg)
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from pinpoint.evaluate import evaluate_dataset
    from pinpoint.metrics import format_table

    if args.track:
        return run_track_eval(args)
    given = [flag for name, flag in TRACKER_OPTIONS.items() if getattr(args, name) is not None]
    if given:
        raise InputError(f"{given[0]} is a tracker option: it needs --track")
    capped: list[str] = []
    notes: list[str] = []
    results = evaluate_dataset(args.data, args.split, pred_dir=args.pred, weights=args.weights, method=args.method,
                               conf=args.conf, distances=args.dist or [3.0], device=args.device, tta=args.tta,
                               snap=args.snap, report=args.report, max_points=args.max_points, capped=capped, notes=notes)
    if args.json:
        print(json.dumps({f"{d:g}px": s.to_dict() for d, s in results.items()}, indent=2))
    else:
        print(format_table(results))
        if args.report:
            print(f"report: {args.report}/ (pr.png, pr.csv, per_image.csv, scores.json, mistakes/)")
    warn("eval", notes + ([cap_warning(capped, args.max_points)] if capped else []))
    return 0


def run_track_eval(args: argparse.Namespace) -> int:
    from pinpoint.data.videos import is_video_dataset, video_groups
    from pinpoint.detect import make_detector, tta_note
    from pinpoint.tracking.scoring import HOTA_MISSING, evaluate_tracking, hota_metric

    if not is_video_dataset(args.data):
        raise InputError(f"--track {args.data}: tracking is scored on a video dataset (DIR/videos beside DIR/labels/NAME.csv)")
    if args.pred or args.report or (args.dist and len(args.dist) > 1):
        raise InputError("--track takes a model (--weights or --method) and one --dist; not --pred or --report")
    distance = args.dist[0] if args.dist else 5.0
    detector = make_detector(args.weights, args.method, args.device, tta=args.tta, snap=args.snap, max_points=args.max_points)
    results = evaluate_tracking(detector, args.data, args.split, distance, tracker_settings(args), conf=args.conf,
                                groups=video_groups(args.data))
    warn("eval", tta_note(detector, args.conf) + ([HOTA_MISSING] if hota_metric() is None else []))
    if args.json:
        print(json.dumps({group: scores.to_dict() for group, scores in results.items()}, indent=2))
        return 0
    header = ("group", "videos", "", "Pd", "precision", "F1", "FA/frame", "FA/MP", "MOTA", "IDF1", "HOTA", "switches")
    rows = [header]
    for group, r in results.items():
        for what, s in (("detector", r.detection), ("tracker", r.tracking)):
            track = what == "tracker"
            rows.append((group if not track else "", str(r.videos) if not track else "", what, f"{s.Pd:.4f}",
                         f"{s.precision:.4f}", f"{s.F1:.4f}", f"{s.false_alarms_per_image:.3f}", f"{s.FA_per_MP:.2f}",
                         *((f"{r.mota:.4f}", f"{r.idf1:.4f}", f"{r.hota:.4f}" if r.hota == r.hota else "-", str(r.id_switches)) if track else ("",) * 4)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    print(f"matching within {distance:g} px of a target's centre or inside its box")
    print("\n".join("  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in rows))
    return 0


def cap_warning(capped: Sequence[str], max_points: int | None) -> str:
    cap = f"--max-points {max_points}" if max_points else "the cap of points per image (--max-points, the checkpoint's 100)"
    shown = ", ".join(capped[:5]) + (", ..." if len(capped) > 5 else "")
    return (f"{len(capped)} image(s) had more points above the threshold than {cap}: only the best were kept "
            f"({shown}); raise --max-points to see them all")


def run_detect(args: argparse.Namespace) -> int:
    from pinpoint.detect import detect_folder, make_detector, tta_note
    from pinpoint.outputs import STDOUT

    detector = make_detector(args.weights, args.method, args.device, args.threads, tta=args.tta, snap=args.snap,
                             max_points=args.max_points)
    skipped: list[str] | None = [] if args.skip_bad else None
    outputs = [("labels", args.save_txt), ("pictures", args.save_vis), ("CSV", args.save_csv), ("JSON", args.save_json),
               ("video", args.save_video)]
    save_csv = args.save_csv if any(where for _, where in outputs) else STDOUT  # nothing asked for: show the points
    run = detect_folder(detector, args.source, args.split, save_txt=args.save_txt, save_vis=args.save_vis, conf=args.conf,
                        progress=not args.no_progress, save_csv=save_csv, save_json=args.save_json,
                        save_video=args.save_video, batch=args.batch, skipped=skipped, inputs=[args.weights])
    report = sys.stderr if STDOUT in (save_csv, args.save_json) else sys.stdout  # standard output holds the table alone
    print(f"pinpoint detect: {run.points} point(s) in {run.frames} image(s)" + written(outputs), file=report)
    if skipped:
        from pinpoint.data.dataset import format_skipped

        print(format_skipped(skipped, "pinpoint detect"), file=report)
    warn("detect", tta_note(detector, args.conf) + run.notes
         + ([cap_warning(run.capped, args.max_points)] if run.capped else []))
    return 0


def written(outputs: Sequence[tuple[str, str | None]]) -> str:
    """"; CSV in points.csv; video in out.mp4" for the outputs asked for (standard output named as such)."""
    from pinpoint.outputs import STDOUT

    return "".join(f"; {what} {'on standard output' if where == STDOUT else f'in {where}'}" for what, where in outputs if where)


def run_track(args: argparse.Namespace) -> int:
    from pinpoint.detect import make_detector
    from pinpoint.outputs import STDOUT
    from pinpoint.tracking.runner import track_source

    settings = tracker_settings(args)
    detector = make_detector(args.weights, args.method, args.device, args.threads)
    started = time.time()
    run = track_source(detector, args.source, settings, save_csv=args.save_csv, save_mot=args.save_mot,
                       save_video=args.save_video, conf=args.conf, progress=not args.no_progress, inputs=[args.weights])
    seconds = time.time() - started
    outputs = [("CSV", args.save_csv), ("MOT", args.save_mot), ("video", args.save_video)]
    report = sys.stderr if STDOUT in (args.save_csv, args.save_mot) else sys.stdout  # standard output holds the tracks alone
    print(f"pinpoint track: {run.tracks} track(s) in {run.frames} frame(s) of {run.sequences} sequence(s), "
          f"{run.frames / max(seconds, 1e-9):.0f} frames/s" + written(outputs), file=report)
    warn("track", run.notes or [])
    return 0


def run_export(args: argparse.Namespace) -> int:
    from pinpoint.export import export_onnx

    started = time.time()
    out = export_onnx(args.weights, args.out, opset=args.opset)
    print(f"pinpoint export: {out} ({out.stat().st_size / 1024:.0f} KiB, opset {args.opset}, dynamic batch/height/width, "
          f"checked against PyTorch; {time.time() - started:.1f}s)")
    return 0


def run_bench(args: argparse.Namespace) -> int:
    from pinpoint.bench import benchmark, format_report, parse_size
    from pinpoint.files import write_text
    from pinpoint.outputs import prepare_output_file

    sizes = [parse_size(text) for text in args.size]
    if args.json:
        prepare_output_file(args.json, "--json", [args.weights])
    result = benchmark(args.weights, args.model, sizes, args.batch, threads=args.threads, seconds=args.seconds,
                       backends=args.backend, decode=args.decode, tta=args.tta)
    print(format_report(result))
    if args.json:
        write_text(args.json, json.dumps(result, indent=2) + "\n")
        print(f"pinpoint bench: figures in {args.json}")
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from pinpoint import convert

    if args.kind == "masks":
        count = convert.masks_to_labels(args.masks, args.out, threshold=args.threshold, suffix=args.suffix)
        print(f"pinpoint convert: {count} label file(s) in {args.out}")
    elif args.kind == "labels-to-coco":
        coco = convert.labels_to_coco(args.data, args.out, category=args.category)
        print(f"pinpoint convert: {len(coco['images'])} image(s), {len(coco['annotations'])} point(s) -> {args.out}")
    else:
        count = convert.coco_to_labels(args.coco, args.out, images_dir=args.images, category=args.category)
        print(f"pinpoint convert: {count} label file(s) in {args.out}")
    return 0


def run_annotate(args: argparse.Namespace) -> int:
    from pinpoint.annotate import serve

    serve(args.data_dir, weights=None if args.no_suggestions else args.weights, host=args.host, port=args.port,
          open_browser=args.open, train_epochs=args.train_epochs)
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from pinpoint.demo import demo

    demo(Path(args.out) if args.out else None, n=args.n, epochs=args.epochs, model=args.model, seed=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
