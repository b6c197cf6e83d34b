"""What-if for issue 35: does a second look at each candidate point move the clutter trade-off?

    python benchmarks/clutter_verifier.py benchmarks/work/leave_one_out/clutter/all [--patch 32] [--paste 0.5]
    python benchmarks/clutter_verifier.py RUN --sweep-only      # the detector alone along the cuts (RUN: also a .pt)
    python benchmarks/clutter_verifier.py RUN --in-boxes        # what it fires on in HIT-UAV test's labelled boxes

The clutter recipe's model (benchmarks/leave_one_out.py) still fires on isolated hot spots on the
ground (lamps, car lights, warm specks), and a higher cut that silences them gives up MDvsFA's faint
targets: the two sit on one curve. A second stage that sees a patch around each candidate point
(nuaa_sirst_verifier.py's classifier) is allowed by the issue if it is better at the same speed; it
is worth building only if it moves that curve, which this script measures.

The run's training images (each dataset's, as the run split them; at most --per-dataset of each)
give the candidates: every decoded point scored --floor or more, outside ignored boxes, labelled
hit or not within the dataset's distance (of the misses, the --per-image best scored: the hard
ones), plus a patch on every labelled target. With --paste P, a
share P of the images of datasets without targets also get synthetic targets pasted (as training
does), so that the classifier meets targets on clutter too. A candidate's new score is the
detector's times the classifier's probability. Each row's cut is chosen on the run's validation
images (all datasets pooled, best smoothed F1, as training cuts), and the test splits are scored at
it and along a sweep of cuts: clutter false alarms per megapixel beside in-domain F1. drone-ir val
is scored on every 10th labelled frame. Nothing here is used by pinpoint itself.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
import time
from pathlib import Path

import numpy as np

from nuaa_sirst_verifier import Verifier, rescore, train_verifier, training_patches
from pretrained import DATA, ROOT, TESTS
from pinpoint.config import TrainConfig
from pinpoint.data.boxes import ClassChoice, inside_boxes, read_boxes
from pinpoint.data.dataset import Sample, keep_mask, paste_targets
from pinpoint.evaluate import dataset_samples
from pinpoint.metrics import Evaluator, best_threshold, match_points, outside_ignored
from pinpoint.points import Points
from pinpoint.predict import Detector
from pinpoint.train import ground_truth, load_dataset, read_checkpoint, training_datasets

DISTANCE = {"drone-ir": 5.0}  # matching distance per dataset; 3 px elsewhere
HIT_UAV_CLASSES = ("Person", "Car", "Bicycle", "OtherVehicle", "DontCare")
CUTS = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)


def candidates(detector: Detector, sample: Sample, floor: float, distance: float) -> tuple[Points, np.ndarray]:
    """The image's points down to `floor`, outside its ignored boxes, and which of them hit a target."""
    points = outside_ignored(detector.predict(sample.image, conf=floor), sample.ignore)
    return points, match_points(points.xy, points.score, sample.xy, distance).pred_matched


def with_pasted(sample: Sample, rng: np.random.Generator) -> Sample:
    """The sample with 1 to 3 synthetic targets pasted outside its ignored boxes (as training does)."""
    image, xy = paste_targets(sample.image, sample.xy, keep_mask(sample), rng)
    return dataclasses.replace(sample, image=image, xy=xy, boxes=None)


def training_set(cfg: TrainConfig, detector: Detector, per_dataset: int, per_image: int, floor: float, paste: float,
                 size: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[tuple[Sample, Points]]]:
    """Patches and labels from the run's training images; and its validation images with their candidates."""
    rng = np.random.default_rng(seed)
    cut, labels, val = [], [], []
    for spec in training_datasets(cfg):
        data = load_dataset(spec, cfg, None)
        distance = DISTANCE.get(spec.name, cfg.match_px)
        val += [(s, candidates(detector, s, floor, distance)[0]) for s in data.val]
        chosen = rng.choice(len(data.train), min(per_dataset, len(data.train)), replace=False)
        no_targets = not any(len(s.xy) for s in data.train)
        samples, found = [], []
        for i in chosen:
            sample = data.train[i]
            if no_targets and rng.random() < paste:
                sample = with_pasted(sample, rng)
            points, hit = candidates(detector, sample, floor, distance)
            misses = np.flatnonzero(~hit)
            dropped = misses[np.argsort(-points.score[misses])][per_image:]  # keep the hardest
            samples.append(sample)
            found.append((points[np.setdiff1d(np.arange(len(points)), dropped)], np.delete(hit, dropped)))
        x, y = training_patches(samples, found, size)
        cut.append(x)
        labels.append(y)
        hits = sum(int(hit.sum()) for _, hit in found)
        print(f"  {spec.name}: {len(chosen)} training images, {hits} candidates on targets, "
              f"{sum(len(hit) for _, hit in found) - hits} off them", flush=True)
        del data, samples
    return np.concatenate(cut), np.concatenate(labels), val


def test_candidates(detector: Detector, floor: float, limit: int | None) -> dict[str, list[tuple[Sample, Points]]]:
    """Each test split's samples (drone-ir: every 10th labelled frame; the first `limit`) with their candidate points."""
    out = {}
    for test, (folder, split, distance, _) in TESTS.items():
        root = DATA / folder
        samples = dataset_samples(root, root / split)
        if test == "drone-ir":
            samples = (s for i, s in enumerate(samples) if i % 10 == 0)
        samples = itertools.islice(samples, limit)
        out[test] = [(s, candidates(detector, s, floor, distance)[0]) for s in samples]
        print(f"  {test}: {len(out[test])} images, {sum(len(p) for _, p in out[test]) / len(out[test]):.1f} candidates an image",
              flush=True)
    return out


def points_in_boxes(detector: Detector) -> dict[str, int]:
    """HIT-UAV test's points at the detector's own cut, counted by the class of the box they fall in
    (first match in the order of the classes; "outside" if in none): what the model fires on there."""
    root = DATA / "HIT-UAV"
    counts = dict.fromkeys(HIT_UAV_CLASSES + ("outside",), 0)
    for sample in dataset_samples(root, root / TESTS["hit-uav"][1]):
        points = detector.predict(sample.image)
        left = np.ones(len(points), bool)
        for name in HIT_UAV_CLASSES:
            labels = read_boxes(root / "boxes" / f"{sample.stem}.csv", sample.image.shape, ClassChoice((name,)))
            inside = inside_boxes(points.xy, np.hstack([labels.xy, labels.boxes])) & left
            counts[name] += int(inside.sum())
            left &= ~inside
        counts["outside"] += int(left.sum())
    return counts


def scores_at(found: dict[str, list[tuple[Sample, Points]]], cut: float) -> str:
    """One line: FA/MP on the clutter splits, F1 on the others, at score cut `cut`."""
    cells = []
    for test, pairs in found.items():
        distance = TESTS[test][2]
        evaluator = Evaluator((distance,), cut)
        for sample, points in pairs:
            evaluator.add(points, sample.truth, ignore=sample.ignore)
        result = evaluator.result()[distance]
        cells.append(f"{test} {result.FA_per_MP:.2f} FA/MP" if test in ("hit-uav", "roadscene") else f"{test} F1 {result.F1:.3f}")
    return ", ".join(cells)


def val_cut(pairs: list[tuple[Sample, Points]], smooth: float) -> float:
    """The best smoothed-F1 cut on the pooled validation images (3 px: most of them are images)."""
    return best_threshold([p for _, p in pairs], ground_truth([s for s, _ in pairs]), 3.0, smooth).threshold


def rescored(net: Verifier, pairs: list[tuple[Sample, Points]], size: int) -> list[tuple[Sample, Points]]:
    """The same candidates, each scored the detector's score times the verifier's probability."""
    samples = [s for s, _ in pairs]
    return list(zip(samples, rescore(net, samples, [(p, None) for _, p in pairs], size)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a finished run folder (best.pt, last.pt); with --sweep-only or --in-boxes also a checkpoint")
    parser.add_argument("--patch", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--floor", type=float, default=0.1)
    parser.add_argument("--per-dataset", type=int, default=1500)
    parser.add_argument("--per-image", type=int, default=8, help="candidates off targets kept an image: the best scored")
    parser.add_argument("--paste", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sweep-only", action="store_true", help="no verifier: the detector's test scores along the cuts")
    parser.add_argument("--in-boxes", action="store_true", help="no verifier: HIT-UAV test's points by the class of their box")
    parser.add_argument("--limit", type=int, help="score only the first LIMIT images of each test split (a quick look)")
    args = parser.parse_args()
    start = time.time()
    detector = Detector.load(args.run if args.run.is_file() else args.run / "best.pt", device="cpu")
    print(f"{args.run}: stored cut {detector.threshold:.3f}", flush=True)
    if args.in_boxes:
        print(f"  HIT-UAV test, points at the stored cut by the box they fall in: {points_in_boxes(detector)}")
        return 0
    if args.sweep_only:
        found = test_candidates(detector, args.floor, args.limit)
        print(f"  at the stored cut: {scores_at(found, detector.threshold)}")
        for c in CUTS:
            print(f"    at {c:.2f}: {scores_at(found, c)}", flush=True)
        return 0
    stored = read_checkpoint(args.run / "last.pt")["config"]
    cfg = TrainConfig.from_dict({**stored, "data": str(ROOT / stored["data"]), "progress": False})  # recipes: relative to the root
    x, y, val = training_set(cfg, detector, args.per_dataset, args.per_image, args.floor, args.paste, args.patch, args.seed)
    print(f"  {len(y)} patches ({int(y.sum())} on targets), {time.time() - start:.0f} s", flush=True)
    net = train_verifier(x, y, args.patch, args.epochs, args.seed)
    print(f"  verifier trained, {time.time() - start:.0f} s", flush=True)
    found = test_candidates(detector, args.floor, args.limit)
    rows = {"detector": (found, val_cut(val, cfg.threshold_smoothing)),
            "detector x verifier": ({t: rescored(net, pairs, args.patch) for t, pairs in found.items()},
                                    val_cut(rescored(net, val, args.patch), cfg.threshold_smoothing))}
    for name, (points, cut) in rows.items():
        print(f"{name}: validation cut {cut:.3f}: {scores_at(points, cut)}")
        for c in CUTS:
            print(f"    at {c:.2f}: {scores_at(points, c)}", flush=True)
    print(f"{time.time() - start:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
