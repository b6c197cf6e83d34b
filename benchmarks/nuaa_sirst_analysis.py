"""Where a trained detector goes wrong on NUAA-SIRST, and cheap what-ifs, for the notes in docs/research-log.md.

    python benchmarks/nuaa_sirst_analysis.py errors RUN/best.pt            # misses (mask area) and false alarms
    python benchmarks/nuaa_sirst_analysis.py errors RUN/best.pt --split 50_50/train.txt   # ... on its own training images
    python benchmarks/nuaa_sirst_analysis.py thresholds RUN1/best.pt ...   # threshold rules on validation vs best test threshold
    python benchmarks/nuaa_sirst_analysis.py ensemble RUN1/best.pt ...     # heatmaps averaged over several runs
    python benchmarks/nuaa_sirst_analysis.py noise                         # each image's noise level, in grey levels
    python benchmarks/nuaa_sirst_analysis.py epochs RUN1 RUN2 ...          # best.pt (best validation epoch) vs last.pt
    python benchmarks/nuaa_sirst_analysis.py views RUN1/best.pt ...        # test-time averaging over sets of views
    python benchmarks/nuaa_sirst_analysis.py agreement RUN1/best.pt ...    # the errors most runs share: what averaging cannot fix
    python benchmarks/nuaa_sirst_analysis.py batchnorm RUN1/best.pt ...    # BatchNorm statistics re-measured (whole images, crops)
    python benchmarks/nuaa_sirst_analysis.py scales RUN1/best.pt ...       # heatmaps averaged over enlarged copies of the image

Scored like the benchmark: the 50/50 test split (or --split), one-to-one nearest-first matching within 3 px.
Every run is read from its checkpoint alone, with the threshold it chose on its validation images.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from pinpoint.checkpoints import load_checkpoint
from pinpoint.codecs.heatmap import decode
from pinpoint.config import TrainConfig
from pinpoint.data.dataset import Sample, TrainingSet, load_samples, load_stems
from pinpoint.data.images import read_image
from pinpoint.errors import InputError
from pinpoint.metrics import Match, best_threshold, evaluate, match_points
from pinpoint.points import Points
from pinpoint.predict import ALL_VIEWS, MIRRORS, Detector
from pinpoint.train import evaluate_detector, ground_truth, split_stems
from pinpoint.viz import save_image

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "NUAA-SIRST"
MATCH_PX = 3.0


def f1_counts(points: list[Points], samples: list[Sample], threshold: float) -> tuple[int, int, int]:
    """(true positives, false alarms, targets) of `points` cut at `threshold`."""
    tp = fp = targets = 0
    for found, sample in zip(points, samples):
        kept = found[found.score >= threshold]
        match = match_points(kept.xy, kept.score, sample.xy, MATCH_PX)
        tp, fp, targets = tp + int(match.gt_matched.sum()), fp + int((~match.pred_matched).sum()), targets + len(sample.xy)
    return tp, fp, targets


def f1_at(points: list[Points], samples: list[Sample], threshold: float) -> float:
    tp, fp, targets = f1_counts(points, samples, threshold)
    return 2 * tp / (targets + tp + fp)


def read_mask(stem: str, image_shape: tuple[int, int]) -> np.ndarray:
    """The image's mask (0/255), resized to the image where it differs (Misc_111)."""
    mask = cv2.imread(str(DATA / "masks" / f"{stem}.png"), cv2.IMREAD_GRAYSCALE)
    if mask.shape != image_shape:
        mask = cv2.resize(mask, image_shape[::-1], interpolation=cv2.INTER_NEAREST)
    return mask


def mask_components(stem: str, image_shape: tuple[int, int]) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """cv2.connectedComponentsWithStats of the image's mask (8-connected)."""
    return cv2.connectedComponentsWithStats((read_mask(stem, image_shape) > 0).astype(np.uint8), connectivity=8)


def mask_area(stem: str, xy: np.ndarray, image_shape: tuple[int, int]) -> int:
    """Pixel count of the mask component whose centroid is nearest to `xy`."""
    count, _, stats, centroids = mask_components(stem, image_shape)
    if count < 2:
        return 0
    return int(stats[1:, cv2.CC_STAT_AREA][np.argmin(((centroids[1:] - xy) ** 2).sum(axis=1))])


def hits_inside_masks(points: Points, sample: Sample, match: Match) -> int:
    """How many targets `match` (points against the sample's labels at MATCH_PX) leaves missed have
    a point, itself unmatched, inside their mask component.

    What the score would gain if a point anywhere on a target counted: an extended target's point
    on its hot spot is then a hit, not a miss and a false alarm. Looser than the field's Pd, which
    asks for a predicted region whose centroid lies within 3 px of the mask's.
    """
    count, components, _, centroids = mask_components(sample.stem, sample.image.shape)
    if count < 2:
        return 0
    free = [tuple(np.round(points.xy[j]).astype(int)) for j in np.flatnonzero(~match.pred_matched)]
    gained = 0
    for target in sample.xy[~match.gt_matched]:
        component = 1 + int(np.argmin(((centroids[1:] - target) ** 2).sum(axis=1)))
        inside = [place for place in free if components[place[1], place[0]] == component]
        if inside:
            free.remove(inside[0])
            gained += 1
    return gained


AREA_BINS = [(0, 10), (10, 30), (30, 100), (100, 100_000)]  # mask areas in px: tiny, small, extended, large


def errors(weights: str, test: list[Sample]) -> None:
    detector = Detector.load(weights, device="cpu")
    found = detector.predict_batch([s.image for s in test])
    matches = [match_points(points.xy, points.score, sample.xy, MATCH_PX) for points, sample in zip(found, test)]
    hits = np.concatenate([match.gt_matched for match in matches])  # every test target, in order
    areas = np.array([mask_area(s.stem, xy, s.image.shape) for s in test for xy in s.xy])
    false_alarm_gaps, false_alarm_scores = [], []
    for points, sample, match in zip(found, test, matches):
        for i in np.flatnonzero(~match.pred_matched):
            gaps = np.hypot(*(sample.xy - points.xy[i]).T) if len(sample.xy) else np.array([np.inf])
            false_alarm_gaps.append(float(gaps.min()))
            false_alarm_scores.append(float(points.score[i]))
    tp, fp, targets = f1_counts(found, test, detector.threshold)
    near = sorted(g for g in false_alarm_gaps if g <= 10)
    by_count: dict[str, list[bool]] = {}
    for sample, match in zip(test, matches):
        by_count.setdefault(str(min(len(sample.xy), 3)) + ("+" if len(sample.xy) >= 3 else ""), []).extend(match.gt_matched.tolist())
    print(f"{weights}: threshold {detector.threshold:.3f}, {targets} targets, {tp} found, {targets - tp} missed, {fp} false alarms")
    print(f"  missed targets' mask areas (px): {sorted(areas[~hits].tolist())}")
    print(f"  false alarms within 10 px of a target: {len(near)} (distances {', '.join(f'{g:.1f}' for g in near)})")
    far = sorted(s for g, s in zip(false_alarm_gaps, false_alarm_scores) if g > 10)
    if far:
        print(f"  false alarms farther from every target: {len(far)}, scored {far[0]:.2f} to {far[-1]:.2f}")
    below = 0
    for match, low, sample in zip(matches, detector.predict_batch([s.image for s in test], conf=0.05), test):
        missed = ~match.gt_matched
        if missed.any() and len(low):
            below += int(match_points(low.xy, low.score, sample.xy[missed], MATCH_PX).gt_matched.sum())
    print(f"  missed targets with a peak within {MATCH_PX:g} px scored under the threshold (>= 0.05): {below}")
    print("  Pd by targets in the image: " + ", ".join(f"{k}: {np.mean(v):.3f} of {len(v)}" for k, v in sorted(by_count.items()) if v))
    gained = sum(hits_inside_masks(points, sample, match) for points, sample, match in zip(found, test, matches))
    print(f"  if a point inside a target's mask also counted: {gained} more hits, Pd {(tp + gained) / targets:.4f}, "
          f"precision {(tp + gained) / max(tp + fp, 1):.4f}, F1 {2 * (tp + gained) / (targets + tp + fp):.4f}")
    print("  Pd by mask area (px): " + ", ".join(f"{lo}-{hi}: {hits[(areas >= lo) & (areas < hi)].mean():.3f} of {((areas >= lo) & (areas < hi)).sum()}"
                                                 for lo, hi in AREA_BINS if ((areas >= lo) & (areas < hi)).any()))


def thresholds(weights_list: list[str], test: list[Sample]) -> None:
    """Test F1 at the threshold each rule picks on the run's own validation images, against the best test threshold.

    The rules: the single best validation cut (threshold_smoothing 0) and the centre of the best
    +-0.1 plateau (threshold_smoothing 0.1, the default); the validation images are carved from
    the training split exactly as the run carved them (its seed and val_fraction). A third rule
    takes the smoothed cut on the whole training split, the images the run trained on included:
    ten times the targets, at the price of scores the network has fitted.
    """
    chosen: dict[str, list[float]] = {"plain": [], "smoothed": [], "training split": [], "best on test": []}
    training = load_samples(DATA, DATA / "splits" / "50_50" / "train.txt")
    training_truth = ground_truth(training)
    for weights in weights_list:
        detector = Detector.load(weights, device="cpu")
        val = validation_images(weights)
        on_val = detector.predict_batch([s.image for s in val], conf=0.01)
        truth = ground_truth(val)
        on_training = detector.predict_batch([s.image for s in training], conf=0.01)
        found = detector.predict_batch([s.image for s in test], conf=0.01)
        plain = f1_at(found, test, best_threshold(on_val, truth, MATCH_PX).threshold)
        smoothed = f1_at(found, test, best_threshold(on_val, truth, MATCH_PX, smooth=0.1).threshold)
        cut = best_threshold(on_training, training_truth, MATCH_PX, smooth=0.1).threshold
        whole = f1_at(found, test, cut)
        best = max(f1_at(found, test, t) for t in np.arange(0.05, 0.95, 0.01))
        for key, value in zip(chosen, (plain, smoothed, whole, best)):
            chosen[key].append(value)
        print(f"{weights}: test F1 {plain:.4f} (best validation cut), {smoothed:.4f} (smoothed), "
              f"{whole:.4f} (training split, cut {cut:.3f}), {best:.4f} (best test cut)")
    gaps = {key: max(b - v for b, v in zip(chosen["best on test"], values)) for key, values in chosen.items()}
    print(f"mean over {len(weights_list)} runs: " + ", ".join(f"{key} {np.mean(values):.4f}" for key, values in chosen.items())
          + f"; worst gap to the best test cut: plain {gaps['plain']:.4f}, smoothed {gaps['smoothed']:.4f}, "
          f"training split {gaps['training split']:.4f}")


def run_config(weights: str) -> TrainConfig:
    """The training settings stored in a checkpoint, pointed at this machine's NUAA-SIRST training split."""
    ckpt = load_checkpoint(weights)
    return TrainConfig.from_dict({**ckpt["config"], "data": str(DATA), "split": str(DATA / "splits" / "50_50" / "train.txt")})


def validation_images(weights: str) -> list[Sample]:
    """The validation images the run carved from the training split (its seed and val_fraction)."""
    return load_stems(str(DATA), split_stems(run_config(weights))[1])


# the image with one other view (2 passes), then the larger sets
VIEW_SETS = {"as is": [(0, False)], "+transpose": [(0, False), (1, True)], "+quarter turn": [(0, False), (1, False)],
             "+half turn": [(0, False), (2, False)], "+mirror": [(0, False), (0, True)], "mirrors": MIRRORS,
             "quarter turns": [(turns, False) for turns in range(4)], "all 8": ALL_VIEWS}


def views(weights_list: list[str], test: list[Sample]) -> None:
    """Test F1 and AP with heatmaps averaged over each set of views (predict.tta_views), against the
    image as is; the threshold and snap choice are made on the run's validation images with the
    same views (training's store_thresholds keeps the plain snap choice; on the runs measured,
    both ways chose the same). The differences are paired: the same weights each time.
    """
    gains: dict[str, list[tuple[float, float]]] = {name: [] for name in VIEW_SETS}
    truth = ground_truth(test)
    for weights in weights_list:
        val = validation_images(weights)
        line = []
        for name, chosen in VIEW_SETS.items():
            detector = Detector.load(weights, device="cpu")
            detector.settings.update(tta=True, tta_views=[list(view) for view in chosen])
            choice = evaluate_detector(detector, val, MATCH_PX, smooth=0.1)
            detector.settings["snap"] = bool(choice["val_snap"])
            found = detector.predict_batch([s.image for s in test], conf=0.01)
            ap = evaluate(found, truth, (MATCH_PX,))[MATCH_PX].AP
            f1 = f1_at(found, test, choice["val_threshold"])
            gains[name].append((f1, ap))
            line.append(f"{name} F1 {f1:.4f} AP {ap:.4f}")
        print(f"{weights}: " + "; ".join(line), flush=True)
    paired_gains(gains, {name: len(chosen) for name, chosen in VIEW_SETS.items()})


# each set: (zoom factors whose heatmaps are averaged, with the 8 views at each zoom)
SCALE_SETS = {"as is": ((1.0,), False), "+1.5x": ((1.0, 1.5), False), "+2x": ((1.0, 2.0), False),
              "1.5x alone": ((1.5,), False), "2x alone": ((2.0,), False), "all 8": ((1.0,), True),
              "all 8 +2x": ((1.0, 2.0), True)}


def zoomed_heatmap(detector: Detector, grey: np.ndarray, zoom: float) -> np.ndarray:
    """The detector's heatmap of `grey` enlarged `zoom` times (bicubic), brought back to the
    image's own pixels (bilinear; cv2's half-pixel centres keep the two frames aligned)."""
    height, width = grey.shape
    big = grey if zoom == 1 else cv2.resize(grey, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_CUBIC)
    with torch.no_grad():
        heatmap = detector.forward(big)[0, 0, :big.shape[0], :big.shape[1]].numpy()
    return heatmap if zoom == 1 else cv2.resize(heatmap, (width, height), interpolation=cv2.INTER_LINEAR)


def scales(weights_list: list[str], test: list[Sample]) -> None:
    """Test F1 and AP with the heatmaps of enlarged copies of each image averaged in (SCALE_SETS).

    Why: the network finds 10-30 px targets far more often than 5-10 px ones (recall 0.97
    against 0.80), and enlarging an image turns the latter into the former. The threshold of
    each set is cut on the run's training images, as training cuts the default's. Paired: the
    same weights each time.
    """
    splits = {"train": load_samples(DATA, DATA / "splits" / "50_50" / "train.txt"), "test": test}
    truth = {split: ground_truth(samples) for split, samples in splits.items()}
    gains: dict[str, list[tuple[float, float]]] = {name: [] for name in SCALE_SETS}
    for weights in weights_list:
        detector = Detector.load(weights, device="cpu")
        cfg = run_config(weights)
        heatmaps: dict[tuple[str, float, bool], list[np.ndarray]] = {}  # each zoom and view set run once, shared by the sets
        line = []
        for name, (zooms, views) in SCALE_SETS.items():
            detector.settings["tta"] = views
            found = {}
            for split, samples in splits.items():
                for zoom in zooms:
                    if (split, zoom, views) not in heatmaps:
                        heatmaps[split, zoom, views] = [zoomed_heatmap(detector, s.image, zoom) for s in samples]
                found[split] = [detector.decode_output(
                    torch.from_numpy(np.mean([heatmaps[split, zoom, views][i] for zoom in zooms], axis=0))[None, None],
                    s.image.shape, 0.01, False, [s.image])[0][0] for i, s in enumerate(samples)]
            cut = best_threshold(found["train"], truth["train"], MATCH_PX, cfg.threshold_smoothing).threshold
            f1 = f1_at(found["test"], test, cut)
            ap = evaluate(found["test"], truth["test"], (MATCH_PX,))[MATCH_PX].AP
            gains[name].append((f1, ap))
            line.append(f"{name} F1 {f1:.4f} AP {ap:.4f} (cut {cut:.3f})")
        print(f"{weights}: " + "; ".join(line), flush=True)
    paired_gains(gains, {name: len(zooms) * (8 if views else 1) for name, (zooms, views) in SCALE_SETS.items()})


def paired_gains(gains: dict[str, list[tuple[float, float]]], passes: dict[str, int]) -> None:
    """Each way's (F1, AP) against the first one's, run by run: mean, standard error, wins and losses."""
    names = list(gains)
    base = np.array(gains[names[0]])
    for name in names[1:]:
        if len(gains[name]) < 2:
            continue
        diff = np.array(gains[name]) - base
        se = diff.std(axis=0, ddof=1) / np.sqrt(len(diff))
        print(f"{name} ({passes[name]} passes) against {names[0]}, {len(diff)} runs: F1 {diff[:, 0].mean():+.4f} "
              f"(standard error {se[0]:.4f}, better in {(diff[:, 0] > 1e-9).sum()}, worse in {(diff[:, 0] < -1e-9).sum()}), "
              f"AP {diff[:, 1].mean():+.4f} (standard error {se[1]:.4f})")


def ensemble(weights_list: list[str], test: list[Sample]) -> None:
    """Average the heatmaps of several runs, decode as each run would, cut at the mean of their thresholds."""
    detectors = [Detector.load(w, device="cpu") for w in weights_list]
    kernel = detectors[0].settings["nms_kernel"]
    points = []
    for sample in test:
        heatmap = np.mean([d.predict_with_heatmap(sample.image, conf=1.0)[1] for d in detectors], axis=0)
        xy, score = decode(torch.from_numpy(heatmap)[None, None].float(), 100, 0.02, kernel)[0]
        points.append(Points(xy, score, sample.image.shape))
    for d, w in zip(detectors, weights_list):
        single = d.predict_batch([s.image for s in test])
        tp, fp, targets = f1_counts(single, test, d.threshold)
        print(f"{w}: F1 {2 * tp / (targets + tp + fp):.4f} alone")
    cut = float(np.mean([d.threshold for d in detectors]))
    tp, fp, targets = f1_counts(points, test, cut)
    print(f"average of {len(detectors)} heatmaps at the mean threshold {cut:.3f}: F1 {2 * tp / (targets + tp + fp):.4f}, "
          f"Pd {tp / targets:.4f}, precision {tp / max(tp + fp, 1):.4f}")


def batchnorm(weights_list: list[str], test: list[Sample]) -> None:
    """Test F1 and AP with the BatchNorm statistics measured again on the training split, against
    the ones training kept (the weight average's running means of its batches' statistics).

    Why ask: training normalises 192 px crops, half of them centred near a target; inference
    normalises whole images, mostly background. "whole": the statistics of the 213 whole training
    images as inference prepares them; "crops": of three fresh epochs of training crops (a check
    that the kept statistics are the crops'). Each way cuts its own threshold on the training split.
    """
    training = load_samples(DATA, DATA / "splits" / "50_50" / "train.txt")
    training_truth, test_truth = ground_truth(training), ground_truth(test)
    for weights in weights_list:
        cfg = run_config(weights)
        line = []
        for source in ("kept", "whole", "crops"):
            detector = Detector.load(weights, device="cpu")
            if source != "kept":
                remeasure_batchnorm(detector, training, cfg, whole=source == "whole")
            on_training = detector.predict_batch([s.image for s in training], conf=0.01)
            cut = best_threshold(on_training, training_truth, MATCH_PX, smooth=cfg.threshold_smoothing).threshold
            found = detector.predict_batch([s.image for s in test], conf=0.01)
            scores = evaluate(found, test_truth, (MATCH_PX,), score_threshold=cut)[MATCH_PX]
            line.append(f"{source} F1 {scores.F1:.4f} AP {scores.AP:.4f}")
        print(f"{weights}: " + "; ".join(line), flush=True)


def remeasure_batchnorm(detector: Detector, samples: list[Sample], cfg: TrainConfig, whole: bool) -> None:
    """Replace the running statistics of every BatchNorm layer by their plain mean over `samples`."""
    model = detector.model
    for layer in model.modules():
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.reset_running_stats()
            layer.momentum = None  # a cumulative mean over every batch that follows
    model.train()
    with torch.no_grad():
        if whole:
            for sample in samples:
                model(torch.from_numpy(detector.prepare(sample.image)[None, None].copy()))
        else:
            crops = TrainingSet(samples, cfg, model.output, seed=123)
            for epoch in range(1, 4):
                crops.set_epoch(epoch)
                for start in range(0, len(crops), cfg.batch):
                    model(torch.stack([crops[k][0] for k in range(start, min(start + cfg.batch, len(crops)))]))
    model.eval()


def agreement(weights_list: list[str], test: list[Sample], sheet: str | None = None) -> None:
    """Which errors the runs share. Each run is cut at its own (plain) threshold; a target's hit rate is the
    share of runs that find it, and false alarms of different runs within MATCH_PX of each other in
    one image are one place. Errors that at least half the runs make are the ones averaging runs or
    views is unlikely to remove (a majority's error is seldom outvoted), so the F1 left with only
    those errors is about as far as such averaging can go. With `sheet`, their windows are drawn
    into that PNG (error_windows).
    """
    found = []
    for weights in weights_list:
        detector = Detector.load(weights, device="cpu")
        detector.settings["tta"] = False  # each network once, at its plain threshold
        found.append(detector.predict_batch([s.image for s in test]))
    runs = len(found)
    rate, places = [], []  # places: (sample index, first point, set of runs)
    for i, sample in enumerate(test):
        hit = np.zeros(len(sample.xy))
        here: list[tuple[np.ndarray, set[int]]] = []
        for r, points in enumerate(f[i] for f in found):
            match = match_points(points.xy, points.score, sample.xy, MATCH_PX)
            hit += match.gt_matched
            for xy in points.xy[~match.pred_matched]:
                near = [place for place in here if np.hypot(*(place[0] - xy)) <= MATCH_PX]
                if near:
                    near[0][1].add(r)
                else:
                    here.append((xy, {r}))
        rate.extend(hit / runs)
        places.extend((i, xy, runs_there) for xy, runs_there in here)
    rate = np.array(rate)
    shared_fa = [(i, xy, len(r)) for i, xy, r in places if len(r) >= runs / 2]
    targets, shared_miss = len(rate), int(np.sum(rate <= 0.5))
    tp = targets - shared_miss
    print(f"{runs} runs, {targets} targets: found by every run {np.sum(rate == 1)}, by none {np.sum(rate == 0)}, "
          f"by half or fewer {np.sum((rate > 0) & (rate <= 0.5))}, by more than half (not all) {np.sum((rate > 0.5) & (rate < 1))}; "
          f"misses per run {(1 - rate).sum():.1f}, false alarms per run {sum(len(r) for _, _, r in places) / runs:.1f}")
    print(f"errors of at least half the runs: {shared_miss} misses, {len(shared_fa)} false-alarm places; "
          f"with only those: Pd {tp / targets:.4f}, precision {tp / (tp + len(shared_fa)):.4f}, "
          f"F1 {2 * tp / (2 * tp + len(shared_fa) + shared_miss):.4f}")
    owner = [(i, xy) for i, sample in enumerate(test) for xy in sample.xy]  # in the order of `rate`
    misses = [(i, xy, hit_rate) for (i, xy), hit_rate in zip(owner, rate) if hit_rate <= 0.5]
    for i, xy, hit_rate in misses:
        area = mask_area(test[i].stem, xy, test[i].image.shape)
        alarm = min((np.hypot(*(fa - xy)) for t, fa, _ in shared_fa if t == i), default=np.inf)
        beside = f", a shared false alarm {alarm:.1f} px away" if alarm <= 10 else ""
        print(f"  missed: {test[i].stem} ({xy[0]:.0f}, {xy[1]:.0f}), mask {area} px, found by {hit_rate:.0%}{beside}")
    for i, xy, count in sorted(shared_fa, key=lambda place: -place[2]):
        print(f"  false alarm: {test[i].stem} ({xy[0]:.0f}, {xy[1]:.0f}) in {count} of {runs} runs")
    if sheet:
        windows = [(i, xy, f"miss {hit_rate:.0%}") for i, xy, hit_rate in misses]
        save_image(sheet, error_windows(test, windows + [(i, xy, f"FA {count}/{runs}") for i, xy, count in shared_fa]))
        print(f"windows of these errors: {sheet}")


def error_windows(samples: list[Sample], places: list[tuple[int, np.ndarray, str]], radius: int = 20, zoom: int = 4,
                  columns: int = 6) -> np.ndarray:
    """A BGR contact sheet: for each (sample index, point, caption), the image around the point,
    contrast stretched and enlarged, with the mask's outline (green), the labels (red dots) and the
    point circled (yellow), so that a miss and a false alarm can be told apart at a glance."""
    tiles = []
    for i, (x, y), caption in places:
        sample = samples[i]
        grey = np.pad(sample.image.astype(np.float64), radius, mode="edge")
        mask = np.pad(read_mask(sample.stem, sample.image.shape), radius)
        col, row = int(round(x)), int(round(y))
        window = grey[row:row + 2 * radius + 1, col:col + 2 * radius + 1]
        window = (window - window.min()) / max(np.ptp(window), 1e-9)
        tile = cv2.resize((window * 255).astype(np.uint8), None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
        tile = cv2.cvtColor(tile, cv2.COLOR_GRAY2BGR)
        inside = (mask[row:row + 2 * radius + 1, col:col + 2 * radius + 1] > 0).astype(np.uint8)
        outline, _ = cv2.findContours(cv2.resize(inside, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST),
                                      cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(tile, outline, -1, (0, 255, 0), 1)
        for lx, ly in sample.xy:
            u, v = (lx - col + radius + 0.5) * zoom, (ly - row + radius + 0.5) * zoom
            if 0 <= u < tile.shape[1] and 0 <= v < tile.shape[0]:
                cv2.circle(tile, (int(u), int(v)), 3, (0, 0, 255), -1)
        centre = int((radius + 0.5) * zoom)
        cv2.circle(tile, (centre, centre), 4 * zoom, (0, 255, 255), 1)
        cv2.putText(tile, f"{sample.stem} {caption}", (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 255, 0), 1)
        tiles.append(tile)
    if not tiles:
        return np.zeros((1, 1, 3), np.uint8)
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % columns)
    return np.vstack([np.hstack(tiles[k:k + columns]) for k in range(0, len(tiles), columns)])


# 3x3 Laplacian of a Laplacian: blind to planes and ramps; on white noise of std s its response has std 6 s
NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)


def epochs(run_dirs: list[str], test: list[Sample]) -> None:
    """Test F1 of each run's best.pt against its last.pt (the final epoch), each at its own stored
    threshold: is the epoch a few dozen validation targets pick better than the final weights?

    Runs whose last.pt is byte-identical to one already scored (copied run folders) count once.
    """
    seen, gains, early = set(), [], []
    for run in map(Path, run_dirs):
        if not ((run / "best.pt").is_file() and (run / "last.pt").is_file()):
            continue
        digest = hashlib.sha256((run / "last.pt").read_bytes()).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        try:
            detectors = [Detector.load(run / name, device="cpu") for name in ("best.pt", "last.pt")]
        except InputError as exc:  # a run of a model since removed
            print(f"{run}: skipped ({exc})")
            continue
        best, last = (f1_at(d.predict_batch([s.image for s in test]), test, d.threshold) for d in detectors)
        best_ckpt = load_checkpoint(run / "best.pt")
        picked, total = best_ckpt["epoch"], best_ckpt["config"]["epochs"]
        gains.append(last - best)
        early.append(picked < 0.7 * total)
        print(f"{run}: best.pt (epoch {picked}/{total}) F1 {best:.4f}, last.pt {last:.4f}")
    if len(gains) < 2:  # one run is its own line above; a mean and its spread need two
        return
    gain, early = np.array(gains), np.array(early)
    early_gain = f"{gain[early].mean():+.4f}" if early.any() else "n/a"
    print(f"{len(gain)} runs: mean F1 gain of last.pt {gain.mean():+.4f} (standard error {gain.std(ddof=1) / np.sqrt(len(gain)):.4f}); "
          f"better in {(gain > 1e-9).sum()}, worse in {(gain < -1e-9).sum()}, equal in {(abs(gain) <= 1e-9).sum()}; "
          f"best epoch before 70% of the run: {early.sum()} runs, mean gain {early_gain}")


def noise(images: list[Path]) -> None:
    """Each image's noise level in 8-bit grey levels (Immerkaer 1996: mean |response| * sqrt(pi / 2) / 6,
    and its robust form, median |response| * 1.4826 / 6), beside its global spread."""
    spread, mean_based, median_based, zero_share = [], [], [], []
    for path in images:
        grey = read_image(path).astype(np.float64) * 255
        response = np.abs(cv2.filter2D(grey, -1, NOISE_KERNEL)[1:-1, 1:-1])
        spread.append(grey.std())
        mean_based.append(np.sqrt(np.pi / 2) * response.mean() / 6)
        median_based.append(1.4826 * np.median(response) / 6)
        zero_share.append(np.mean(response == 0))
    percentiles = [0, 5, 25, 50, 75, 95, 100]
    for name, values in (("global std", spread), ("noise (mean-based)", mean_based),
                         ("noise (median-based)", median_based), ("share of zero responses", zero_share)):
        print(f"{name:>24}: percentiles {percentiles}: {np.round(np.percentile(values, percentiles), 3).tolist()}")
    print(f"{len(images)} images; noise under 1 grey level: {np.mean(np.array(mean_based) < 1):.1%}; "
          f"median-based estimate 0: {np.mean(np.array(median_based) == 0):.1%}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["errors", "thresholds", "ensemble", "noise", "epochs", "views", "agreement",
                                         "batchnorm", "scales"])
    parser.add_argument("weights", nargs="*")
    parser.add_argument("--sheet", help="agreement: also draw the shared errors into this PNG")
    parser.add_argument("--split", default="50_50/test.txt",
                        help="the images scored, under splits/ (e.g. 50_50/train.txt: the run's own training images)")
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"{DATA}: NUAA-SIRST not found", file=sys.stderr)
        return 2
    if args.what == "noise":
        noise(sorted((DATA / "images").glob("*.png")))
        return 0
    if not args.weights:
        parser.error(f"{args.what}: give at least one checkpoint")
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    test = load_samples(DATA, DATA / "splits" / args.split)
    if args.what == "errors":
        for weights in args.weights:
            errors(weights, test)
    elif args.what == "thresholds":
        thresholds(args.weights, test)
    elif args.what == "epochs":
        epochs(args.weights, test)
    elif args.what == "views":
        views(args.weights, test)
    elif args.what == "agreement":
        agreement(args.weights, test, args.sheet)
    elif args.what == "batchnorm":
        batchnorm(args.weights, test)
    elif args.what == "scales":
        scales(args.weights, test)
    else:
        ensemble(args.weights, test)
    return 0


if __name__ == "__main__":
    sys.exit(main())
