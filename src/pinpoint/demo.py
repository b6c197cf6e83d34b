"""`pinpoint demo`: the whole job on built-in synthetic data, in a few minutes on a laptop CPU."""

from __future__ import annotations

import time
from pathlib import Path

from pinpoint.config import TrainConfig
from pinpoint.data.synth import synthesize
from pinpoint.data.synth_video import synthesize_videos
from pinpoint.detect import detect_folder, make_detector
from pinpoint.errors import InputError
from pinpoint.evaluate import evaluate_dataset
from pinpoint.files import numbered_folder
from pinpoint.metrics import format_table
from pinpoint.tracking.runner import track_source
from pinpoint.tracking.scoring import evaluate_tracking
from pinpoint.train import train

VIDEO_FRAMES = 60  # frames of each of the demo's two videos


def demo_config(data: Path, run: Path, model: str, epochs: int, seed: int) -> TrainConfig:
    """The recipe the demo trains with: the default model's settings on the synthetic splits."""
    return TrainConfig(data=str(data), split=str(data / "splits" / "train.txt"), val_split=str(data / "splits" / "val.txt"),
                       out=str(run), model=model, epochs=epochs, seed=seed)


DEFAULT_OUT = Path("pinpoint-demo")


def demo(out: Path | None = None, n: int = 240, epochs: int = 80, model: str = TrainConfig.model, seed: int = 0) -> dict:
    """synth -> train -> eval -> detect -> track; returns the test scores and prints where everything went.

    Everything goes into a fresh folder: `out` if it is absent or empty, else the first free one of
    pinpoint-demo, pinpoint-demo2, ... A second demo never writes over the first.
    """
    started = time.time()
    if out is None:
        out = numbered_folder(DEFAULT_OUT)
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out}: not an empty folder; the demo writes into a fresh one (leave out --out to get "
                         f"the first free one of {DEFAULT_OUT}, {DEFAULT_OUT}2, ...)")
    data, run = out / "data", out / "run"
    print(f"[1/5] synthesising {n} infrared-like images -> {data}")
    synthesize(data, n=n, seed=seed)

    print(f"[2/5] training the {model} model for {epochs} epochs -> {run}")
    train(demo_config(data, run, model, epochs, seed))

    test = data / "splits" / "test.txt"
    print("[3/5] scoring best.pt on the test split")
    results = evaluate_dataset(data, test, weights=str(run / "best.pt"), distances=(3.0, 5.0), device="cpu",
                               report=out / "eval")
    print(format_table(results))

    print("[4/5] detecting on the test split: labels and pictures")
    detector = make_detector(str(run / "best.pt"), None, "cpu")
    detect_folder(detector, data, test, save_txt=out / "pred", save_vis=out / "vis")

    print("[5/5] tracking on two synthetic videos: tracks, annotated videos and their scores")
    videos = out / "videos"
    synthesize_videos(videos, n=2, frames=VIDEO_FRAMES, seed=seed)
    track_source(detector, videos, save_csv=out / "tracks", save_video=out / "tracks", progress=False)
    tracked = evaluate_tracking(detector, videos, distance=5.0)["all"]
    print(f"  per-frame F1 at 5 px: {tracked.detection.F1:.3f} for the detector alone, {tracked.tracking.F1:.3f} tracked "
          f"(false alarms per frame {tracked.detection.false_alarms_per_image:.3f} -> {tracked.tracking.false_alarms_per_image:.3f}); "
          f"MOTA {tracked.mota:.3f}, IDF1 {tracked.idf1:.3f}, HOTA {tracked.hota:.3f}")

    print(f"\npinpoint demo finished in {time.time() - started:.0f}s. Everything is in {out}/:")
    for what, where in [("dataset (images/, labels/, splits/)", data), ("checkpoints best.pt / last.pt", run),
                        ("training log and loss curve", run / "log.csv"), ("", run / "loss.png"),
                        ("test scores (3 px and 5 px)", out / "eval" / "scores.json"),
                        ("PR curves", out / "eval" / "pr.png"), ("hits and mistakes per image", out / "eval" / "per_image.csv"),
                        ("pictures of the mistakes", out / "eval" / "mistakes"), ("predicted labels", out / "pred"),
                        ("pictures: heatmap + points", out / "vis"), ("synthetic videos with their labels", videos),
                        ("tracks: NAME.csv and annotated NAME.mp4", out / "tracks")]:
        print(f"  {what:38s} {where}")
    return {d: s.to_dict() for d, s in results.items()}
