"""The `pinpoint` command: parses words, calls the same functions as the Python API.

Bad input surfaces as one line `pinpoint: error: FILE[:LINE]: what is wrong` and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

from pinpoint.errors import InputError


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except InputError as exc:
        print(f"pinpoint: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pinpoint: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    from pinpoint.config import TrainConfig

    defaults = TrainConfig()
    parser = argparse.ArgumentParser(prog="pinpoint", description="Find tiny infrared targets as points.")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = verbs.add_parser("synth", help="write a synthetic infrared dataset (images/, labels/, splits/)")
    p.add_argument("out", help="output folder")
    p.add_argument("--n", type=int, default=200, help="number of images (default 200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-size", type=int, default=160, help="smallest side length in pixels")
    p.add_argument("--max-size", type=int, default=320, help="largest side length in pixels")
    p.add_argument("--splits", type=float, nargs=3, default=(0.6, 0.2, 0.2), metavar=("TRAIN", "VAL", "TEST"),
                   help="shares of the train/val/test split files (default 0.6 0.2 0.2)")
    p.set_defaults(run=run_synth)

    p = verbs.add_parser("train", help="train a model on a folder of images with point labels")
    p.add_argument("--data", required=True, help="folder with images/ and labels/")
    p.add_argument("--split", help="file of training stems (default: every image)")
    p.add_argument("--val-split", help="file of validation stems (default: a seeded 10%% of the training stems)")
    p.add_argument("--model", default=defaults.model, help=f"model name (default {defaults.model})")
    p.add_argument("--epochs", type=int, default=defaults.epochs)
    p.add_argument("--batch", type=int, default=defaults.batch)
    p.add_argument("--lr", type=float, default=defaults.lr)
    p.add_argument("--img-size", type=int, default=defaults.img_size, help="resize every image to this square size; 0 = native size with crops")
    p.add_argument("--crop-size", type=int, default=defaults.crop_size, help="crop side when --img-size 0")
    p.add_argument("--sigma", type=float, default=defaults.sigma, help="gaussian width of the heatmap target, in model-input pixels")
    p.add_argument("--loss", default=defaults.loss, choices=["mse", "weighted-mse", "focal"])
    p.add_argument("--schedule", default=defaults.schedule, choices=["step", "cosine"])
    p.add_argument("--lr-step", type=int, default=defaults.lr_step, help="epochs between learning-rate drops (step schedule)")
    p.add_argument("--lr-gamma", type=float, default=defaults.lr_gamma, help="learning-rate factor at each drop")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--workers", type=int, default=defaults.workers, help="data-loading worker processes")
    p.add_argument("--device", default=defaults.device, help="auto, cpu, cuda or cuda:N")
    p.add_argument("--out", default=defaults.out, help="run folder for checkpoints, log and curves")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run_train)

    p = verbs.add_parser("eval", help="score predictions (a folder of label files, a checkpoint or a classical method)")
    p.add_argument("--data", required=True, help="folder with images/ and labels/ (the ground truth)")
    p.add_argument("--split", help="file of stems to score (default: every image)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--pred", help="folder of predicted label files (x y score)")
    source.add_argument("--weights", help="a checkpoint to run on the images")
    source.add_argument("--method", help="a training-free method: tophat or local-contrast")
    p.add_argument("--conf", type=float, help="score threshold (default: the checkpoint's own)")
    p.add_argument("--dist", type=float, nargs="+", default=[3.0], help="matching distances in pixels (default 3)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--device", default="auto")
    p.set_defaults(run=run_eval)

    p = verbs.add_parser("detect", help="find points in an image or a folder; write labels and pictures")
    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument("--weights", help="a checkpoint written by train")
    model.add_argument("--method", help="a training-free method: tophat or local-contrast")
    p.add_argument("--source", required=True, help="an image, a folder of images, or a dataset folder with images/")
    p.add_argument("--split", help="file of stems to restrict a folder to")
    p.add_argument("--save-txt", help="folder for one label file per image (x y score)")
    p.add_argument("--save-vis", help="folder for pictures: JET heatmap over the image with the points")
    p.add_argument("--conf", type=float, help="score threshold (default: the checkpoint's own)")
    p.add_argument("--device", default="auto")
    p.set_defaults(run=run_detect)

    p = verbs.add_parser("convert", help="convert datasets: masks -> labels, labels <-> COCO keypoints")
    kinds = p.add_subparsers(dest="kind", required=True, metavar="KIND")
    c = kinds.add_parser("masks", help="binary target masks -> point labels (8-connected component centroids)")
    c.add_argument("--masks", required=True, help="folder of mask images")
    c.add_argument("--out", required=True, help="folder for the label files")
    c.add_argument("--threshold", type=float, default=0.0, help="a pixel is target when mask > threshold (default 0)")
    c.add_argument("--suffix", default="", help="strip this from mask names, e.g. _pixels0")
    c.set_defaults(run=run_convert)
    c = kinds.add_parser("labels-to-coco", help="a dataset folder -> one COCO keypoints JSON")
    c.add_argument("--data", required=True, help="folder with images/ and labels/")
    c.add_argument("--out", required=True, help="the JSON file to write")
    c.add_argument("--category", default="target")
    c.set_defaults(run=run_convert)
    c = kinds.add_parser("coco-to-labels", help="a COCO keypoints JSON (CVAT, Label Studio, ...) -> label files")
    c.add_argument("--coco", required=True, help="the COCO JSON file")
    c.add_argument("--out", required=True, help="folder for the label files")
    c.add_argument("--images", help="images folder, for sizes missing from the JSON (default: images/ beside --out)")
    c.add_argument("--category", help="keep only this category name")
    c.set_defaults(run=run_convert)

    p = verbs.add_parser("demo", help="synth -> train -> eval -> detect on built-in synthetic data")
    p.add_argument("--out", default="pinpoint-demo", help="folder for everything the demo makes")
    p.add_argument("--n", type=int, default=240, help="synthetic images")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--model", default="heatmap")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run_demo)
    return parser


def run_synth(args: argparse.Namespace) -> int:
    from pinpoint.data.synth import synthesize

    started = time.time()
    try:
        out = synthesize(args.out, n=args.n, seed=args.seed, min_size=args.min_size, max_size=args.max_size, splits=tuple(args.splits))
    except ValueError as exc:
        raise InputError(f"{args.out}: {exc}") from None
    print(f"pinpoint synth: {args.n} images in {out} ({time.time() - started:.1f}s); splits in {Path(out) / 'splits'}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from pinpoint.config import TrainConfig
    from pinpoint.train import train

    cfg = TrainConfig(data=args.data, split=args.split, val_split=args.val_split, model=args.model, epochs=args.epochs,
                      batch=args.batch, lr=args.lr, img_size=args.img_size, crop_size=args.crop_size, sigma=args.sigma,
                      loss=args.loss, schedule=args.schedule, lr_step=args.lr_step, lr_gamma=args.lr_gamma, seed=args.seed,
                      workers=args.workers, device=args.device, out=args.out, progress=not args.no_progress)
    train(cfg)
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from pinpoint.evaluate import evaluate_dataset
    from pinpoint.metrics import format_table

    results = evaluate_dataset(args.data, args.split, pred_dir=args.pred, weights=args.weights, method=args.method,
                               conf=args.conf, distances=args.dist, device=args.device)
    if args.json:
        print(json.dumps({f"{d:g}px": s.to_dict() for d, s in results.items()}, indent=2))
    else:
        print(format_table(results))
    return 0


def run_detect(args: argparse.Namespace) -> int:
    from pinpoint.detect import detect_folder, make_detector

    detector = make_detector(args.weights, args.method, args.device)
    count, points = detect_folder(detector, args.source, args.split, save_txt=args.save_txt, save_vis=args.save_vis, conf=args.conf)
    print(f"pinpoint detect: {points} point(s) in {count} image(s)"
          + (f"; labels in {args.save_txt}" if args.save_txt else "") + (f"; pictures in {args.save_vis}" if args.save_vis else ""))
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


def run_demo(args: argparse.Namespace) -> int:
    from pinpoint.demo import demo

    demo(Path(args.out), n=args.n, epochs=args.epochs, model=args.model, seed=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
