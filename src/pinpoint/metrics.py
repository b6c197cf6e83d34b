"""How good are predicted points? Matching within a distance, then Pd / precision / F1 / Fa / AP / error.

A predicted point is right when it lies within `max_dist` pixels (inclusive) of a ground-truth
target, one prediction per target and one target per prediction. Two matchings are used, each
for the question it answers:

* **Nearest first** (the headline numbers: Pd, precision, F1, false alarms, localisation error).
  All prediction-target pairs within `max_dist` are taken in order of increasing distance
  (ties: higher score, then lower prediction index, then lower target index), and a pair is kept
  when both ends are still free. The score plays no part beyond tie-breaking because the caller
  has already cut the predictions at its detection threshold: every point it hands us is a
  claim, and each target should be credited to the claim that sits closest to it.
* **Score order** (AP and the precision-recall curve; COCO style). Predictions are visited from
  the highest score down (ties: lower index first) and each takes the nearest free target within
  `max_dist`. This is what ranking needs: the matching of the predictions above any score cut is
  exactly the prefix of this one, so one pass yields every point of the curve.

The two differ only when predictions compete for a target, e.g. a confident point at 2.5 px and
a weak one at 0.5 px from the same target: nearest first credits the weak one, score order the
confident one.

Every rate is pooled over the dataset (sums of counts, then one division), never averaged over
images, so an image with no target does not produce a 0/0 of its own.

Undefined values. One rule, no exceptions: a ratio whose denominator is zero is NaN, never a
made-up 0.0 or 1.0, because a number that was not measured must not be plotted or averaged as if
it had been. NaN is written as null in JSON (see `Scores.to_dict`) and as "n/a" in tables.
So Pd is NaN with no targets, precision is NaN with no predictions, the localisation error is NaN
with no matched pair, and false alarms per image / Fa are NaN with no images. F1 is computed as
2 TP / (2 TP + FP + FN), which equals the harmonic mean of Pd and precision whenever both exist
and stays defined (0.0) when only one of them is: with targets but no predictions F1 = 0, with
predictions but no targets F1 = 0; it is NaN only when there are neither. AP is NaN without
targets and 0.0 with targets but no predictions (recall never rises, so the area is 0).

Fa here counts false-alarm POINTS per pixel of image area (FP / sum of H*W). Segmentation papers
on infrared small targets count false-alarm PIXELS instead, so the two are not interchangeable;
`Fa_e6` is the same value in the 1e-6 units the field reports.

False alarms per megapixel of target-free area (`FA_per_MP`) divide the false alarms by the
pixels farther than `max_dist` from every target instead of by the whole image: the area where a
point can only be a false alarm. Benchmark frames are mostly targets and their surroundings, a
user's sky footage mostly empty background, and this rate carries over from one to the other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Literal, Sequence

import numpy as np

from pinpoint.data.boxes import box_mask, inside_boxes
from pinpoint.points import Points

# Distances are compared as `d <= max_dist + DIST_TOLERANCE_PX` so that a point meant to lie
# exactly on the boundary is not lost to floating-point rounding in (x1 - x2)**2 + (y1 - y2)**2.
DIST_TOLERANCE_PX = 1e-9


@dataclass(frozen=True)
class Match:
    """A one-to-one matching between P predictions and G targets.

    `pairs[k] = (prediction index, target index)` with Euclidean distance `distances[k]`, in the
    order the pairs were made.
    """

    pred_matched: np.ndarray  # (P,) bool
    gt_matched: np.ndarray  # (G,) bool
    pairs: np.ndarray  # (K, 2) int64
    distances: np.ndarray  # (K,) float64


def pairwise_distances(a_xy: np.ndarray, b_xy: np.ndarray) -> np.ndarray:
    """Euclidean distances in pixels, shape (len(a_xy), len(b_xy))."""
    a_xy = np.asarray(a_xy, dtype=np.float64).reshape(-1, 2)
    b_xy = np.asarray(b_xy, dtype=np.float64).reshape(-1, 2)
    delta = a_xy[:, None, :] - b_xy[None, :, :]
    return np.sqrt(np.sum(delta * delta, axis=-1))


def match_points(
    pred_xy: np.ndarray,
    pred_score: np.ndarray,
    gt_xy: np.ndarray,
    max_dist: float,
    order: Literal["nearest", "score"] = "nearest",
) -> Match:
    """Match predictions to targets one to one within `max_dist` pixels (inclusive).

    `order="nearest"` is the headline matching, `order="score"` the COCO-style one used for AP;
    the module docstring says why there are two and how ties are broken.
    """
    pred_score = np.asarray(pred_score, dtype=np.float64).reshape(-1)
    distances = pairwise_distances(pred_xy, gt_xy)
    if len(pred_score) != len(distances):
        raise ValueError(f"{len(distances)} predicted points but {len(pred_score)} scores")
    _check_max_dist(max_dist)
    within = within_reach(distances, max_dist)
    if order == "nearest":
        return _match_nearest_first(distances, pred_score, within)
    if order == "score":
        return _match_score_order(distances, pred_score, within)
    raise ValueError(f"order must be 'nearest' or 'score', got {order!r}")


def within_reach(distances: np.ndarray, max_dist: float, pred_xy: np.ndarray | None = None, gt_xy: np.ndarray | None = None,
                 boxes: np.ndarray | None = None) -> np.ndarray:
    """(P, G) bool: which prediction may match which target. Within `max_dist` of its centre, or,
    with `boxes` ((G, 2) widths and heights, centred on the targets), inside its box: a large target's
    point may sit anywhere on it."""
    within = distances <= max_dist + DIST_TOLERANCE_PX
    if boxes is not None and within.size:
        offset = np.abs(np.asarray(pred_xy, np.float64)[:, None, :] - np.asarray(gt_xy, np.float64)[None, :, :])
        within |= np.all(offset <= np.asarray(boxes, np.float64)[None, :, :] / 2 + DIST_TOLERANCE_PX, axis=2)
    return within


def _match_nearest_first(distances: np.ndarray, score: np.ndarray, within: np.ndarray) -> Match:
    n_pred, n_gt = distances.shape
    pred_index, gt_index = np.nonzero(within)
    pair_dist = distances[pred_index, gt_index]
    # np.lexsort sorts by its last key first: distance, then higher score, then indices.
    ranking = np.lexsort((gt_index, pred_index, -score[pred_index], pair_dist))
    pred_matched = np.zeros(n_pred, dtype=bool)
    gt_matched = np.zeros(n_gt, dtype=bool)
    taken = []
    for k in ranking:
        p, g = pred_index[k], gt_index[k]
        if not pred_matched[p] and not gt_matched[g]:
            pred_matched[p] = gt_matched[g] = True
            taken.append(k)
    taken = np.asarray(taken, dtype=np.int64)
    pairs = np.stack([pred_index[taken], gt_index[taken]], axis=1).astype(np.int64).reshape(-1, 2)
    return Match(pred_matched, gt_matched, pairs, pair_dist[taken].astype(np.float64))


def _match_score_order(distances: np.ndarray, score: np.ndarray, within: np.ndarray) -> Match:
    n_pred, n_gt = distances.shape
    pred_matched = np.zeros(n_pred, dtype=bool)
    gt_matched = np.zeros(n_gt, dtype=bool)
    pairs, pair_dist = [], []
    if n_gt:
        for p in np.argsort(-score, kind="stable"):
            candidates = np.where(within[p] & ~gt_matched, distances[p], np.inf)
            g = int(np.argmin(candidates))  # the first minimum: lower target index wins ties
            if np.isfinite(candidates[g]):
                pred_matched[p] = gt_matched[g] = True
                pairs.append((p, g))
                pair_dist.append(distances[p, g])
    return Match(
        pred_matched,
        gt_matched,
        np.asarray(pairs, dtype=np.int64).reshape(-1, 2),
        np.asarray(pair_dist, dtype=np.float64),
    )


@dataclass(frozen=True)
class PRCurve:
    """Precision and recall when keeping the predictions with score >= `thresholds[i]`.

    One entry per distinct score, highest first (a cut cannot separate equal scores). There is no
    artificial (recall 0, precision 1) start point: every entry is a cut that can be made.
    """

    recall: np.ndarray  # (T,) float64, NaN when there are no targets
    precision: np.ndarray  # (T,) float64
    thresholds: np.ndarray  # (T,) float64, decreasing

    def to_dict(self) -> dict[str, list]:
        return {name: [_json_float(v) for v in getattr(self, name)] for name in ("recall", "precision", "thresholds")}


def precision_recall_curve(scores: np.ndarray, is_tp: np.ndarray, targets: int) -> PRCurve:
    """The PR curve of pooled predictions whose right/wrong status comes from score-order matching."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    is_tp = np.asarray(is_tp, dtype=bool).reshape(-1)
    if len(scores) != len(is_tp):
        raise ValueError(f"{len(scores)} scores but {len(is_tp)} true-positive flags")
    ranking = np.argsort(-scores, kind="stable")
    sorted_scores = scores[ranking]
    cum_tp = np.cumsum(is_tp[ranking])
    # The last prediction of each run of equal scores is where a cut can be made.
    cut_ends = np.r_[np.nonzero(np.diff(sorted_scores))[0], len(sorted_scores) - 1] if len(scores) else np.zeros(0, int)
    kept = cut_ends + 1
    tp = cum_tp[cut_ends].astype(np.float64)
    recall = tp / targets if targets > 0 else np.full(len(kept), np.nan)
    return PRCurve(recall=recall, precision=tp / kept, thresholds=sorted_scores[cut_ends])


def average_precision(scores: np.ndarray, is_tp: np.ndarray, targets: int) -> float:
    """Area under the PR curve, all-point interpolated as in PASCAL VOC 2010 and later.

    Precision is first replaced by its monotone envelope (at each recall, the best precision at
    that recall or any higher one; COCO uses the same envelope) and the envelope is integrated
    exactly over recall from 0 to the highest recall reached, instead of being sampled at 11
    (VOC 2007) or 101 (COCO) recall points. NaN without targets, 0.0 with targets but no
    predictions.
    """
    if targets <= 0:
        return math.nan
    curve = precision_recall_curve(scores, is_tp, targets)
    if len(curve.recall) == 0:
        return 0.0
    envelope = np.maximum.accumulate(curve.precision[::-1])[::-1]
    recall_steps = np.diff(np.r_[0.0, curve.recall])
    return float(np.sum(recall_steps * envelope))


@dataclass(frozen=True)
class Scores:
    """Dataset-level results at one matching distance. Plain numbers, ready for JSON via `to_dict`."""

    max_dist: float  # matching distance in pixels (inclusive)
    images: int
    pixels: int  # sum of H*W over the images
    targets: int
    predictions: int  # predictions used for the headline numbers (after the score cut, if any)
    true_positives: int
    false_positives: int
    false_negatives: int
    Pd: float  # detection rate (recall) = TP / targets
    precision: float  # TP / predictions
    F1: float  # 2 TP / (2 TP + FP + FN)
    false_alarms_per_image: float  # FP / images
    Fa: float  # FP / pixels: false-alarm points per pixel
    Fa_e6: float  # Fa / 1e-6, the unit papers report
    free_pixels: int  # pixels farther than max_dist from every target
    FA_per_MP: float  # FP per 1e6 target-free pixels
    loc_error_px: float  # mean distance of matched pairs
    AP: float  # area under the score-ranked PR curve (VOC 2010+ all-point interpolation)
    pr_curve: PRCurve = field(repr=False)

    def to_dict(self, include_curve: bool = False) -> dict:
        """JSON-ready dict; NaN becomes None (null). The PR curve is left out unless asked for."""
        out = {}
        for name in self.__dataclass_fields__:
            if name == "pr_curve":
                continue
            value = getattr(self, name)
            out[name] = value if isinstance(value, int) else _json_float(value)
        if include_curve:
            out["pr_curve"] = self.pr_curve.to_dict()
        return out


def covered_pixels(xy: np.ndarray, image_size: tuple[int, int], radius: float, boxes: np.ndarray | None = None,
                   ignore: np.ndarray | None = None) -> int:
    """How many pixels of an image of `image_size` (H, W) have their centre within `radius` of a
    point of `xy` (pixel-index convention), or inside its box when `boxes` gives their widths and
    heights, or inside an `ignore` region ((K, 4) centre x, y, w, h): where a prediction would be
    matched or not judged, not a false alarm."""
    height, width = image_size
    if len(xy) == 0 and (ignore is None or len(ignore) == 0):
        return 0
    mask = box_mask(ignore, image_size) if ignore is not None else np.zeros((height, width), bool)
    reach = radius + DIST_TOLERANCE_PX
    for x, y in np.asarray(xy, np.float64):
        c0, c1 = max(0, math.ceil(x - reach)), min(width - 1, math.floor(x + reach))
        r0, r1 = max(0, math.ceil(y - reach)), min(height - 1, math.floor(y + reach))
        if c0 > c1 or r0 > r1:
            continue
        cols, rows = np.arange(c0, c1 + 1) - x, np.arange(r0, r1 + 1) - y
        mask[r0:r1 + 1, c0:c1 + 1] |= cols[None, :] ** 2 + rows[:, None] ** 2 <= reach ** 2
    if boxes is not None and len(xy):  # the targets' boxes, centred on them, with the matching's tolerance
        mask |= box_mask(np.hstack([np.asarray(xy, np.float64).reshape(-1, 2), np.asarray(boxes, np.float64).reshape(-1, 2)]),
                         image_size, slack=DIST_TOLERANCE_PX)
    return int(mask.sum())


def outside_ignored(pred: Points, ignore: np.ndarray | None) -> Points:
    """The points that lie outside every ignored region ((K, 4) centre x, y, w, h; None: all of them).

    A region is ignored when its labels say neither "target" nor "nothing here" (a person seen from
    a drone, for a recipe that does not count people): a point there is neither a hit nor a false
    alarm, so it is dropped before matching, for the headline numbers, AP and threshold choice alike."""
    if ignore is None or len(ignore) == 0:
        return pred
    return pred[~inside_boxes(pred.xy, ignore)]


def _json_float(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, NaN when the denominator is zero (see the module docstring)."""
    return numerator / denominator if denominator else math.nan


def _check_max_dist(max_dist: float) -> None:
    if not (math.isfinite(max_dist) and max_dist >= 0):
        raise ValueError(f"matching distance must be a finite number >= 0 pixels, got {max_dist!r}")


def _check_pair(pred: Points, gt: Points) -> None:
    if pred.image_size != gt.image_size:
        raise ValueError(f"prediction is for an image of size {pred.image_size} but ground truth for {gt.image_size}")
    if not np.all(np.isfinite(pred.score)):
        raise ValueError("prediction scores must be finite to be ranked")


class Evaluator:
    """Accumulates a dataset image by image, then reports `Scores` per matching distance.

    `thresholds` are matching distances in pixels. `score_threshold`, when given, cuts the
    predictions for the headline numbers only (score >= cut), while AP and the PR curve use every
    prediction handed in: pass a detector's raw peaks once and get both. Left at None, the
    predictions are taken as already cut by the caller and everything uses all of them.
    """

    def __init__(self, thresholds: Iterable[float] = (3.0,), score_threshold: float | None = None) -> None:
        self.thresholds = tuple(dict.fromkeys(float(t) for t in thresholds))
        if not self.thresholds:
            raise ValueError("at least one matching distance is needed")
        for max_dist in self.thresholds:
            _check_max_dist(max_dist)
        self.score_threshold = score_threshold
        self._images = 0
        self._pixels = 0
        self._targets = 0
        self._predictions = 0
        self._free_pixels = {t: 0 for t in self.thresholds}
        self._true_positives = {t: 0 for t in self.thresholds}
        self._matched_distance_sum = {t: 0.0 for t in self.thresholds}
        self._ranked_scores: list[np.ndarray] = []
        self._ranked_is_tp: dict[float, list[np.ndarray]] = {t: [] for t in self.thresholds}

    def claims(self, pred: Points) -> Points:
        """The predictions the headline numbers count: those at or above the score cut, if any."""
        return pred if self.score_threshold is None else pred[pred.score >= self.score_threshold]

    def add(self, pred: Points, gt: Points, boxes: np.ndarray | None = None,
            ignore: np.ndarray | None = None) -> dict[float, Match]:
        """Add one image: its predictions and its ground truth (same image size); with `boxes`
        ((G, 2) widths and heights of the targets' boxes), a point inside a box matches too; with
        `ignore` ((K, 4) regions: centre x, y, w, h) points inside those are not judged at all (see
        outside_ignored) and their area is not target-free area.

        Returns the headline matching at each distance, between `claims(pred)` and `gt`, for
        callers that show the image's own hits and misses (report.py).
        """
        _check_pair(pred, gt)
        pred = outside_ignored(pred, ignore)
        distances = pairwise_distances(pred.xy, gt.xy)
        kept = pred.score >= self.score_threshold if self.score_threshold is not None else np.ones(len(pred), bool)
        height, width = gt.image_size
        self._images += 1
        self._pixels += height * width
        self._targets += len(gt)
        self._predictions += int(kept.sum())
        self._ranked_scores.append(pred.score.copy())
        headlines = {}
        for max_dist in self.thresholds:
            within = within_reach(distances, max_dist, pred.xy, gt.xy, boxes)
            headline = headlines[max_dist] = _match_nearest_first(distances[kept], pred.score[kept], within[kept])
            self._true_positives[max_dist] += len(headline.pairs)
            self._free_pixels[max_dist] += height * width - covered_pixels(gt.xy, gt.image_size, max_dist, boxes, ignore)
            self._matched_distance_sum[max_dist] += float(headline.distances.sum())
            ranked = _match_score_order(distances, pred.score, within)
            self._ranked_is_tp[max_dist].append(ranked.pred_matched)
        return headlines

    def result(self) -> dict[float, Scores]:
        """Scores for every matching distance, in the order the distances were given."""
        scores = np.concatenate(self._ranked_scores) if self._ranked_scores else np.zeros(0)
        results = {}
        for max_dist in self.thresholds:
            tp = self._true_positives[max_dist]
            fp = self._predictions - tp
            fn = self._targets - tp
            is_tp = np.concatenate(self._ranked_is_tp[max_dist]) if self._images else np.zeros(0, bool)
            fa = _ratio(fp, self._pixels)
            results[max_dist] = Scores(
                max_dist=max_dist,
                images=self._images,
                pixels=self._pixels,
                targets=self._targets,
                predictions=self._predictions,
                true_positives=tp,
                false_positives=fp,
                false_negatives=fn,
                Pd=_ratio(tp, self._targets),
                precision=_ratio(tp, self._predictions),
                F1=_ratio(2 * tp, 2 * tp + fp + fn),
                false_alarms_per_image=_ratio(fp, self._images),
                Fa=fa,
                Fa_e6=fa * 1e6,
                free_pixels=self._free_pixels[max_dist],
                FA_per_MP=_ratio(fp * 1e6, self._free_pixels[max_dist]),
                loc_error_px=_ratio(self._matched_distance_sum[max_dist], tp),
                AP=average_precision(scores, is_tp, self._targets),
                pr_curve=precision_recall_curve(scores, is_tp, self._targets),
            )
        return results


def evaluate(
    predictions: Sequence[Points],
    targets: Sequence[Points],
    thresholds: Iterable[float] = (3.0,),
    score_threshold: float | None = None,
) -> dict[float, Scores]:
    """Evaluate paired lists of per-image predictions and ground truth in one call."""
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} prediction sets but {len(targets)} ground-truth sets")
    evaluator = Evaluator(thresholds, score_threshold)
    for pred, gt in zip(predictions, targets):
        evaluator.add(pred, gt)
    return evaluator.result()


_TABLE_COLUMNS = ("dist px", "Pd", "precision", "F1", "FA/img", "FA/MP", "Fa(1e-6)", "loc err px", "AP", "TP/targets")


def format_table(results: dict[float, Scores]) -> str:
    """A fixed-width text table, one row per matching distance; undefined values show as n/a."""

    def number(value: float, digits: int) -> str:
        return f"{value:.{digits}f}" if math.isfinite(value) else "n/a"

    rows = [_TABLE_COLUMNS]
    for max_dist in sorted(results):
        s = results[max_dist]
        rows.append((
            f"{max_dist:g}",
            number(s.Pd, 4),
            number(s.precision, 4),
            number(s.F1, 4),
            number(s.false_alarms_per_image, 3),
            number(s.FA_per_MP, 2),
            number(s.Fa_e6, 3),
            number(s.loc_error_px, 3),
            number(s.AP, 4),
            f"{s.true_positives}/{s.targets}",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(_TABLE_COLUMNS))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


THRESHOLD_GRID = 0.005  # step of the thresholds tried by best_threshold(smooth > 0)


@dataclass(frozen=True)
class ThresholdChoice:
    """The score cut that maximises F1, with the numbers it gives and the whole F1 curve."""

    threshold: float  # keep predictions with score >= threshold
    F1: float
    Pd: float
    precision: float
    max_dist: float
    thresholds: np.ndarray  # every candidate cut, decreasing
    f1_curve: np.ndarray  # F1 at each candidate cut


def best_threshold(predictions: Sequence[Points], targets: Sequence[Points], max_dist: float = 3.0,
                   smooth: float = 0.0) -> ThresholdChoice:
    """The detection threshold that maximises the headline F1, e.g. on a validation split.

    `predictions` are the detector's raw scored points per image (before any cut), `targets` the
    ground truth of the same images. Every distinct score is tried as a cut (keep score >= cut),
    and at each cut the predictions are matched nearest first exactly as `Evaluator` does, so the
    F1 reported here is the F1 `Evaluator` gives for predictions cut at the returned threshold.
    Among cuts with equal F1 the highest is returned: it reaches the same F1 with fewer points.

    With `smooth` > 0, the cut maximises F1 averaged over thresholds within +-smooth instead (on a
    grid of 0.005 from 0 to 1, scores assumed in [0, 1]). Why: on a few dozen validation targets
    F1 moves in steps of several hundredths from one cut to the next, and the single best cut is
    often the edge of a lucky step; the centre of a broad high plateau transfers better to new
    images (NUAA-SIRST, 25 trained runs: test F1 0.912 against 0.905 on average, docs/research-log.md).
    Raises ValueError without targets (F1 cannot rank cuts) or without predictions (nothing to cut).
    """
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} prediction sets but {len(targets)} ground-truth sets")
    _check_max_dist(max_dist)
    total_targets = sum(len(gt) for gt in targets)
    all_scores = np.concatenate([pred.score for pred in predictions]) if predictions else np.zeros(0)
    if total_targets == 0:
        raise ValueError("no ground-truth targets: F1 is undefined at every threshold")
    if len(all_scores) == 0:
        raise ValueError("no scored predictions to choose a threshold from")

    # TP as a function of the cut is a sum over images of step functions. Within one image it can
    # only change when a prediction with some target within max_dist enters, so the image is
    # re-matched at those scores only, and each change is recorded as an event (score, delta TP).
    event_scores, event_deltas = [], []
    for pred, gt in zip(predictions, targets):
        _check_pair(pred, gt)
        distances = pairwise_distances(pred.xy, gt.xy)
        near_a_target = (distances <= max_dist + DIST_TOLERANCE_PX).any(axis=1)
        cuts = np.unique(pred.score[near_a_target])[::-1]
        tp_at_cut = [
            len(_match_nearest_first(distances[pred.score >= cut], pred.score[pred.score >= cut],
                                     within_reach(distances[pred.score >= cut], max_dist)).pairs)
            for cut in cuts
        ]
        event_scores.append(cuts)
        event_deltas.append(np.diff(np.r_[0, tp_at_cut]))

    event_scores = np.concatenate(event_scores)
    event_deltas = np.concatenate(event_deltas)
    by_score = np.argsort(event_scores, kind="stable")
    event_scores, event_deltas = event_scores[by_score], event_deltas[by_score]
    deltas_below = np.r_[0, np.cumsum(event_deltas)]  # deltas_below[k]: sum of the k lowest events

    cuts = np.unique(all_scores)[::-1]
    tp = deltas_below[-1] - deltas_below[np.searchsorted(event_scores, cuts, side="left")]
    kept = len(all_scores) - np.searchsorted(np.sort(all_scores), cuts, side="left")
    f1 = 2.0 * tp / (kept + total_targets)  # = 2 TP / (2 TP + FP + FN)
    best = int(np.argmax(f1))  # first maximum = highest cut
    threshold = float(cuts[best])
    if smooth > 0 and f1.max() > 0:
        grid = np.round(np.arange(0.0, 1.0 + 1e-9, THRESHOLD_GRID), 6)
        # keeping score >= t is the cut at the lowest score >= t; above every score nothing is kept (F1 0)
        at = np.searchsorted(-cuts, -grid, side="right") - 1
        f1_grid = np.where(at >= 0, f1[np.maximum(at, 0)], 0.0)
        half = max(int(round(smooth / THRESHOLD_GRID)), 1)
        averaged = np.convolve(np.pad(f1_grid, half, mode="edge"), np.ones(2 * half + 1) / (2 * half + 1), mode="valid")
        threshold = float(grid[int(np.argmax(averaged))])
        best = max(int(np.searchsorted(-cuts, -threshold, side="right")) - 1, 0)
    return ThresholdChoice(
        threshold=threshold,
        F1=float(f1[best]),
        Pd=float(tp[best] / total_targets),
        precision=float(tp[best] / kept[best]),
        max_dist=float(max_dist),
        thresholds=cuts,
        f1_curve=f1,
    )
