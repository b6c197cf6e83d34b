"""Tracking on drone-ir: choose the tracker's defaults on held-out training videos, then score them
on the val videos (issue 27's targets).

    python benchmarks/tracking.py --stage candidates   # detector over the tuning and val videos, kept in work/ (~4 min)
    python benchmarks/tracking.py --stage tune         # every tracker setting of the grid on the tuning videos (cached points)
    python benchmarks/tracking.py --stage synthetic    # evidence across frames on synthetic videos (pinpoint synth --video)
    pinpoint eval --data ../shared/data/drone-ir --split ../shared/data/drone-ir/splits/val.txt --track   # the targets

Where the defaults are chosen. drone-ir's val videos are the test split of the shipped model's
table (issue 26), so nothing is chosen on them. The shipped model held out a seeded tenth of the
training videos as its validation (train.py's `carve`, seed 0), never trained on them: those
videos are the tuning set here, with the shipped model as the detector, as a user would run it.

The detector is run once per video at a low score floor (CANDIDATE_FLOOR) and its points cached;
each setting of the grid then replays the tracker over them (the tracker sees only the points at
or above its own candidate cut). Scores are pinpoint's own: per-frame F1 at 5 px or inside the
box, false alarms per frame, MOTA, IDF1 and HOTA (pinpoint/tracking/scoring.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from dataclasses import dataclass

from pinpoint.data.videos import read_video_labels, video_frames, video_stems
from pinpoint.files import write_text
from pinpoint.metrics import Evaluator
from pinpoint.points import Points
from pinpoint.predict import Detector
from pinpoint.tracking import TrackerSettings, track_points
from pinpoint.train import carve

ROOT = Path(__file__).resolve().parents[1]
DRONE_IR = ROOT.parent / "shared" / "data" / "drone-ir"
WORK = ROOT / "benchmarks" / "work" / "tracking"
RESULTS = ROOT / "benchmarks" / "results"
CANDIDATE_FLOOR = 0.05  # the lowest score kept in the cache: below any candidate cut the grid tries


def tuning_videos() -> list[str]:
    """The training videos the shipped model held out as validation (its recipe: val_fraction 0.1, seed 0)."""
    return carve(video_stems(DRONE_IR, DRONE_IR / "splits" / "train.txt"), 0.1, 0)[1]


def val_videos() -> list[str]:
    return video_stems(DRONE_IR, DRONE_IR / "splits" / "val.txt")


def cache_candidates(detector: Detector, stems: list[str], where: Path) -> None:
    """Each video's points at or above CANDIDATE_FLOOR, frame by frame, in where/NAME.npz."""
    where.mkdir(parents=True, exist_ok=True)
    for k, stem in enumerate(stems):
        target = where / f"{stem}.npz"
        if target.exists():
            continue
        start = time.perf_counter()
        frames, xy, score = [], [], []
        size = None
        for sample in video_frames(DRONE_IR, stem, all_frames=True):
            points = detector.predict(sample.image, CANDIDATE_FLOOR)
            frames.append(np.full(len(points), int(sample.stem.rsplit("_", 1)[1])))
            xy.append(points.xy)
            score.append(points.score)
            size = sample.image.shape
        n = int(np.concatenate(frames).max(initial=-1)) + 1 if frames else 0
        save_candidates(target, frames, xy, score, len(frames), size)
        print(f"[{k + 1}/{len(stems)}] {stem}: {len(frames)} frames, {n} with points, "
              f"{time.perf_counter() - start:.1f} s", flush=True)


def save_candidates(target: Path, frame: list[np.ndarray], xy: list[np.ndarray], score: list[np.ndarray],
                    frames: int, size: tuple[int, int]) -> None:
    """One video's cached points (per frame: their frame numbers, positions and scores) and its frame
    count and size, as `load_videos` reads them; written whole or not at all."""
    np.savez(target.with_suffix(".tmp.npz"), frame=np.concatenate(frame), xy=np.concatenate(xy),
             score=np.concatenate(score), frames=frames, size=np.array(size))
    target.with_suffix(".tmp.npz").rename(target)


@dataclass
class Video:
    """One video's cached candidates and its labels, frame by frame."""

    name: str
    candidates: list[Points]
    truth: list[Points]
    boxes: list[np.ndarray]


def load_videos(where: Path, stems: list[str]) -> list[Video]:
    videos = []
    for stem in stems:
        cache = np.load(where / f"{stem}.npz")
        size = tuple(int(v) for v in cache["size"])
        labels = read_video_labels(DRONE_IR / "labels" / f"{stem}.csv")
        nothing = np.zeros((0, 2))
        candidates, truth, boxes = [], [], []
        for f in range(int(cache["frames"])):
            here = cache["frame"] == f
            candidates.append(Points(cache["xy"][here], cache["score"][here], size))
            xy = labels.points.get(f, nothing)
            truth.append(Points(xy, np.ones(len(xy)), size))
            boxes.append(labels.boxes.get(f, nothing))
        videos.append(Video(stem, candidates, truth, boxes))
    return videos


def replay(videos: list[Video], settings: TrackerSettings, threshold: float, distance: float = 5.0) -> dict:
    """Per-frame scores of the detector alone and of the tracker over cached candidates."""
    alone, tracked = Evaluator((distance,), threshold), Evaluator((distance,))  # every tracked point counts
    for video in videos:
        for candidates, points, truth, boxes in zip(video.candidates,
                                                    track_points(video.candidates, settings, threshold),
                                                    video.truth, video.boxes):
            alone.add(candidates[candidates.score >= threshold], truth, boxes)
            xy = np.array([[p.x, p.y] for p in points], np.float64).reshape(-1, 2)
            tracked.add(Points(xy, np.array([p.score for p in points]), truth.image_size), truth, boxes)
    a, t = alone.result()[distance], tracked.result()[distance]
    return {"detector": {"Pd": a.Pd, "precision": a.precision, "F1": a.F1, "FA_per_frame": a.false_alarms_per_image},
            "tracker": {"Pd": t.Pd, "precision": t.precision, "F1": t.F1, "FA_per_frame": t.false_alarms_per_image}}


def tune(videos: list[Video], threshold: float) -> list[dict]:
    """The grid, one axis group at a time: first what a track must show to be reported (candidates,
    the track's mean score, M of N), then how tracks move and end (gate, acceleration,
    max_missed) at the best of the first."""
    rows = []

    def run(**changes) -> dict:
        settings = dataclasses.replace(best, **changes)
        start = time.perf_counter()
        row = {"settings": dataclasses.asdict(settings), **replay(videos, settings, threshold),
               "seconds": time.perf_counter() - start}
        rows.append(row)
        t = row["tracker"]
        print(f"{changes}: F1 {row['detector']['F1']:.4f} -> {t['F1']:.4f} (Pd {t['Pd']:.4f}, precision {t['precision']:.4f}), "
              f"FA/frame {row['detector']['FA_per_frame']:.4f} -> {t['FA_per_frame']:.4f}, {row['seconds']:.0f} s", flush=True)
        return row

    best = TrackerSettings()
    first = [run(candidates=c, track_score=ts, confirm_hits=m, confirm_window=n)
             for c in (1.0, 0.85, 0.7, 0.5) for ts in (0.0, 1.0, 1.05, 1.1, 1.15, 1.2)
             for m, n in ((2, 3), (3, 5), (5, 8))]
    # the best F1 (to 4 places); among equals the shorter window (tracks are final sooner) and the
    # fewest faint points
    top = max(first, key=lambda r: (round(r["tracker"]["F1"], 4), -r["settings"]["confirm_window"],
                                    r["settings"]["candidates"]))
    best = TrackerSettings(**top["settings"])
    second = [run(gate_px=g, acceleration=a, max_missed=k) for g in (5.0, 10.0, 20.0) for a in (0.25, 1.0, 3.0)
              for k in (2, 5, 10)]
    # among equals the middle of the motion axes (where the data cannot tell them apart, neither
    # too tight for a fast target nor too loose in clutter) and the shorter bridge
    top = max(second, key=lambda r: (round(r["tracker"]["F1"], 4), -abs(np.log(r["settings"]["gate_px"] / 10)),
                                     -abs(np.log(r["settings"]["acceleration"])), -r["settings"]["max_missed"]))
    best = TrackerSettings(**top["settings"])
    print(f"best on the tuning videos: {best}")
    return rows


def synthetic(detector: Detector) -> None:
    """The tracker where clutter does not last: `pinpoint synth --video` (faint flickering targets,
    one-frame specks). Three settings: M of N alone at the threshold, the defaults, and evidence
    from faint points without the track-score cut."""
    from pinpoint.data.synth_video import synthesize_videos
    from pinpoint.tracking.scoring import evaluate_tracking

    where = WORK / "synthetic"
    if not where.exists():
        synthesize_videos(where, n=8, frames=90, seed=11)
    rows = {"M of N at the threshold": TrackerSettings(candidates=1.0, track_score=0.0),
            "defaults": TrackerSettings(),
            "faint points, no track-score cut": TrackerSettings(candidates=0.5, track_score=0.0)}
    for name, settings in rows.items():
        r = evaluate_tracking(detector, where, settings=settings)["all"]
        print(f"{name}: per-frame F1 {r.detection.F1:.4f} -> {r.tracking.F1:.4f} "
              f"(Pd {r.detection.Pd:.3f} -> {r.tracking.Pd:.3f}, FA/frame {r.detection.false_alarms_per_image:.3f} -> "
              f"{r.tracking.false_alarms_per_image:.3f}), IDF1 {r.idf1:.3f}, HOTA {r.hota:.3f}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", choices=["candidates", "tune", "synthetic"], required=True)
    parser.add_argument("--weights", default=None, help="the detector (default: the shipped model)")
    args = parser.parse_args()
    detector = Detector.load(args.weights)
    if args.stage == "candidates":
        print(f"tuning videos ({len(tuning_videos())}): {' '.join(tuning_videos())}", flush=True)
        cache_candidates(detector, tuning_videos(), WORK / "candidates" / "tune")
        cache_candidates(detector, val_videos(), WORK / "candidates" / "val")
        return 0
    if args.stage == "tune":
        videos = load_videos(WORK / "candidates" / "tune", tuning_videos())
        rows = tune(videos, detector.threshold)
        write_text(RESULTS / "tracking_tune.json", json.dumps(rows, indent=1))
        return 0
    if args.stage == "synthetic":
        synthetic(detector)
        return 0
    raise SystemExit(f"stage {args.stage}: not written yet")


if __name__ == "__main__":
    sys.exit(main())
