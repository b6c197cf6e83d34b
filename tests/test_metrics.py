"""Metrics on hand-built cases whose numbers are worked out by hand in the comments."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from pinpoint.metrics import (
    Evaluator,
    average_precision,
    best_threshold,
    covered_pixels,
    evaluate,
    format_table,
    match_points,
    precision_recall_curve,
)
from pinpoint.points import Points

SIZE = (100, 100)


def pts(xy, score=None, size=SIZE) -> Points:
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    score = np.ones(len(xy)) if score is None else score
    return Points(xy, score, size)


def one_image(pred: Points, gt: Points, max_dist: float = 3.0):
    return evaluate([pred], [gt], thresholds=(max_dist,))[max_dist]


# --- matching -------------------------------------------------------------------------------


def test_match_structure_and_empty_sides():
    m = match_points(np.zeros((0, 2)), np.zeros(0), [[1.0, 1.0]], 3.0)
    assert m.pairs.shape == (0, 2) and m.pairs.dtype == np.int64
    assert m.distances.shape == (0,)
    assert m.pred_matched.shape == (0,) and m.gt_matched.tolist() == [False]
    m = match_points([[1.0, 1.0]], [0.5], np.zeros((0, 2)), 3.0, order="score")
    assert m.pred_matched.tolist() == [False] and m.pairs.shape == (0, 2)


def test_boundary_is_inclusive():
    gt = [[10.0, 10.0]]
    assert match_points([[13.0, 10.0]], [1.0], gt, 3.0).pairs.tolist() == [[0, 0]]
    assert match_points([[13.01, 10.0]], [1.0], gt, 3.0).pairs.shape == (0, 2)
    # 1.8**2 + 2.4**2 = 9 exactly on paper; in floating point the distance is 3.0000000000000004.
    assert match_points([[11.8, 12.4]], [1.0], gt, 3.0).pred_matched.tolist() == [True]


def test_two_predictions_compete_nearest_wins():
    # Nearest first: the weak point 1 px away gets the target, the confident one 2 px away is a
    # false alarm. Score order: the confident one is visited first and takes it.
    pred_xy, score, gt = [[21.0, 20.0], [22.0, 20.0]], [0.2, 0.9], [[20.0, 20.0]]
    nearest = match_points(pred_xy, score, gt, 3.0)
    assert nearest.pred_matched.tolist() == [True, False]
    assert nearest.distances.tolist() == [1.0]
    by_score = match_points(pred_xy, score, gt, 3.0, order="score")
    assert by_score.pred_matched.tolist() == [False, True]
    assert by_score.distances.tolist() == [2.0]


def test_two_targets_one_prediction():
    m = match_points([[20.5, 20.0]], [1.0], [[20.0, 20.0], [22.0, 20.0]], 3.0)
    assert m.pairs.tolist() == [[0, 0]]
    assert m.gt_matched.tolist() == [True, False]
    s = one_image(pts([[20.5, 20.0]]), pts([[20.0, 20.0], [22.0, 20.0]]))
    assert (s.true_positives, s.false_negatives, s.false_positives) == (1, 1, 0)
    assert s.Pd == 0.5 and s.precision == 1.0


def test_nearest_first_and_score_order_can_match_different_numbers():
    # Targets A=(0,0), B=(4,0). High score at 1.5 (A: 1.5, B: 2.5), low score at -1 (A: 1, B: 5).
    # Nearest first: low-A (1.0), then high-B (2.5) -> 2 pairs.
    # Score order:   high takes its nearest, A (1.5); low has only A within 3 px -> 1 pair.
    pred_xy, score, gt = [[1.5, 0.0], [-1.0, 0.0]], [0.9, 0.1], [[0.0, 0.0], [4.0, 0.0]]
    nearest = match_points(pred_xy, score, gt, 3.0)
    assert sorted(nearest.pairs.tolist()) == [[0, 1], [1, 0]]
    assert nearest.distances.tolist() == [1.0, 2.5]  # made in order of distance
    by_score = match_points(pred_xy, score, gt, 3.0, order="score")
    assert by_score.pairs.tolist() == [[0, 0]]
    # The headline uses nearest first (2 TP), AP the score order (recall stops at 1/2).
    s = evaluate([pts(np.add(pred_xy, 10), score)], [pts(np.add(gt, 10))])[3.0]
    assert s.true_positives == 2 and s.Pd == 1.0
    assert s.pr_curve.recall.tolist() == [0.5, 0.5]
    assert s.AP == pytest.approx(0.5)


def test_equal_distances_tie_break_on_score_then_index():
    # Both predictions are 1 px from the target: the higher score wins.
    m = match_points([[9.0, 10.0], [11.0, 10.0]], [0.3, 0.8], [[10.0, 10.0]], 3.0)
    assert m.pred_matched.tolist() == [False, True]
    # Equal scores too: the lower index wins.
    m = match_points([[9.0, 10.0], [11.0, 10.0]], [0.5, 0.5], [[10.0, 10.0]], 3.0)
    assert m.pred_matched.tolist() == [True, False]


def test_bad_matching_arguments():
    with pytest.raises(ValueError):
        match_points([[0.0, 0.0]], [1.0, 2.0], [[0.0, 0.0]], 3.0)
    with pytest.raises(ValueError):
        match_points([[0.0, 0.0]], [1.0], [[0.0, 0.0]], -1.0)
    with pytest.raises(ValueError):
        match_points([[0.0, 0.0]], [1.0], [[0.0, 0.0]], 3.0, order="random")


# --- headline scores ------------------------------------------------------------------------


def test_perfect_detection():
    gt = pts([[10.0, 10.0], [50.0, 60.0]])
    s = one_image(pts([[10.5, 10.0], [50.0, 59.5]], [0.9, 0.8]), gt)
    assert (s.images, s.pixels, s.targets, s.predictions) == (1, 10_000, 2, 2)
    assert (s.true_positives, s.false_positives, s.false_negatives) == (2, 0, 0)
    assert (s.Pd, s.precision, s.F1) == (1.0, 1.0, 1.0)
    assert s.false_alarms_per_image == 0.0 and s.Fa == 0.0 and s.Fa_e6 == 0.0
    assert s.loc_error_px == 0.5
    assert s.AP == 1.0


def test_one_miss():
    s = one_image(pts([[10.0, 11.0]]), pts([[10.0, 10.0], [50.0, 60.0]]))
    assert (s.true_positives, s.false_negatives) == (1, 1)
    assert s.Pd == 0.5 and s.precision == 1.0
    assert s.F1 == pytest.approx(2 / 3)  # 2*1 / (2*1 + 0 + 1)
    assert s.loc_error_px == 1.0
    assert s.AP == pytest.approx(0.5)


def test_one_false_alarm_far_away():
    s = one_image(pts([[10.0, 10.0], [90.0, 90.0]], [0.9, 0.95]), pts([[10.0, 10.0]]))
    assert (s.true_positives, s.false_positives) == (1, 1)
    assert s.Pd == 1.0 and s.precision == 0.5
    assert s.F1 == pytest.approx(2 / 3)
    assert s.false_alarms_per_image == 1.0
    assert s.Fa == pytest.approx(1 / 10_000) and s.Fa_e6 == pytest.approx(100.0)
    # Ranked: FP (0.95) then TP (0.9): precision 1/2 at recall 1 -> AP 0.5.
    assert s.AP == pytest.approx(0.5)


def test_fa_uses_each_image_size():
    # 1 FP on 100x200, 2 FP on 50x40: Fa = 3 / (20000 + 2000).
    preds = [pts([[5.0, 5.0]], size=(100, 200)), pts([[1.0, 1.0], [30.0, 30.0]], size=(50, 40))]
    gts = [pts(np.zeros((0, 2)), size=(100, 200)), pts(np.zeros((0, 2)), size=(50, 40))]
    s = evaluate(preds, gts)[3.0]
    assert s.pixels == 22_000 and s.false_positives == 3
    assert s.Fa == pytest.approx(3 / 22_000)
    assert s.Fa_e6 == pytest.approx(3e6 / 22_000)  # 136.36...
    assert s.false_alarms_per_image == 1.5


def test_target_free_area_leaves_out_the_discs_around_targets():
    # a disc of radius 3 holds 29 pixel centres (Gauss's circle problem), 11 of them in the image
    # when it sits on a corner pixel; two overlapping discs count their union once
    assert covered_pixels(np.array([[50.0, 50.0]]), SIZE, 3.0) == 29
    assert covered_pixels(np.array([[0.0, 0.0]]), SIZE, 3.0) == 11
    assert covered_pixels(np.array([[50.0, 50.0], [50.0, 50.0]]), SIZE, 3.0) == 29
    assert covered_pixels(np.array([[50.0, 50.0], [51.0, 50.0]]), SIZE, 3.0) == 29 + 7
    assert covered_pixels(np.array([[-20.0, 50.0]]), SIZE, 3.0) == 0
    assert covered_pixels(np.zeros((0, 2)), SIZE, 3.0) == 0
    # 1 false alarm on an image with one target: 10,000 - 29 free pixels
    s = one_image(pts([[10.0, 10.0], [90.0, 90.0]]), pts([[10.0, 10.0]]))
    assert s.free_pixels == 10_000 - 29
    assert s.FA_per_MP == pytest.approx(1e6 / (10_000 - 29))
    assert one_image(pts([[10.0, 10.0]]), pts([[10.0, 10.0]])).FA_per_MP == 0.0


def test_a_point_inside_a_targets_box_matches_it():
    # 8 px right of the centre of a 20 x 10 box: beyond 5 px, but on the target
    pred, gt, boxes = pts([[58.0, 50.0], [50.0, 58.0]]), pts([[50.0, 50.0]]), np.array([[20.0, 10.0]])
    assert evaluate([pred], [gt], thresholds=(5.0,))[5.0].true_positives == 0
    evaluator = Evaluator((5.0,))
    evaluator.add(pred, gt, boxes)
    s = evaluator.result()[5.0]
    assert (s.true_positives, s.false_positives) == (1, 1)  # the point 8 px below lies outside the 10 px tall box
    # target-free area: the image less the box's 21 x 11 pixel centres (the disc of radius 5 lies inside it)
    assert s.free_pixels == 10_000 - 21 * 11
    assert covered_pixels(np.array([[50.0, 50.0]]), SIZE, 5.0, np.array([[4.0, 4.0]])) == 81  # a small box, inside the disc


def test_several_distances_at_once():
    pred, gt = pts([[10.0, 12.0], [40.0, 40.5]]), pts([[10.0, 10.0], [40.0, 40.0]])
    results = evaluate([pred], [gt], thresholds=(1.0, 3.0, 1.0))
    assert list(results) == [1.0, 3.0]
    assert results[1.0].true_positives == 1 and results[1.0].loc_error_px == 0.5
    assert results[3.0].true_positives == 2 and results[3.0].loc_error_px == 1.25


def test_score_threshold_cuts_headline_but_not_ap():
    gt = pts([[10.0, 10.0], [50.0, 50.0]])
    pred = pts([[10.0, 10.0], [50.0, 50.0], [80.0, 80.0]], [0.9, 0.2, 0.5])
    s = evaluate([pred], [gt], score_threshold=0.4)[3.0]
    assert (s.predictions, s.true_positives, s.false_positives) == (2, 1, 1)
    # AP sees all three: 0.9 TP, 0.5 FP, 0.2 TP -> 1/2 * 1 + 1/2 * 2/3 = 5/6.
    assert s.pr_curve.thresholds.tolist() == [0.9, 0.5, 0.2]
    assert s.AP == pytest.approx(5 / 6)


def test_size_mismatch_is_refused():
    with pytest.raises(ValueError):
        Evaluator().add(pts([[1.0, 1.0]], size=(10, 10)), pts([[1.0, 1.0]], size=(10, 11)))


# --- AP and the PR curve --------------------------------------------------------------------


def test_ap_hand_computed_ranking_pooled_over_images():
    # 3 targets over two images; ranking 0.9 TP, 0.8 FP, 0.7 TP.
    # (recall, precision) = (1/3, 1), (1/3, 1/2), (2/3, 2/3); envelope 1, 2/3, 2/3
    # AP = 1/3 * 1 + 0 * 2/3 + 1/3 * 2/3 = 5/9.
    preds = [pts([[10.0, 10.0], [70.0, 70.0]], [0.9, 0.8]), pts([[20.0, 20.0]], [0.7])]
    gts = [pts([[10.0, 10.0], [40.0, 40.0]]), pts([[20.0, 21.0]])]
    s = evaluate(preds, gts)[3.0]
    assert s.AP == pytest.approx(5 / 9)
    np.testing.assert_allclose(s.pr_curve.recall, [1 / 3, 1 / 3, 2 / 3])
    np.testing.assert_allclose(s.pr_curve.precision, [1.0, 0.5, 2 / 3])
    assert s.pr_curve.thresholds.tolist() == [0.9, 0.8, 0.7]
    assert average_precision([0.9, 0.8, 0.7], [True, False, True], 3) == pytest.approx(5 / 9)


def test_ap_uses_the_precision_envelope():
    # 0.9 FP, 0.8 TP, 0.7 TP, 2 targets: precision 0, 1/2, 2/3 -> envelope 2/3 everywhere, AP 2/3.
    assert average_precision([0.9, 0.8, 0.7], [False, True, True], 2) == pytest.approx(2 / 3)


def test_equal_scores_form_one_cut():
    # 0.9 TP, then 0.5 TP and 0.5 FP together: points (1/2, 1), (1, 2/3) -> AP 1/2 + 1/2 * 2/3 = 5/6.
    # Splitting the tie with the TP first would wrongly give 1.0.
    curve = precision_recall_curve([0.5, 0.9, 0.5], [False, True, True], 2)
    assert curve.thresholds.tolist() == [0.9, 0.5]
    np.testing.assert_allclose(curve.recall, [0.5, 1.0])
    np.testing.assert_allclose(curve.precision, [1.0, 2 / 3])
    assert average_precision([0.5, 0.9, 0.5], [False, True, True], 2) == pytest.approx(5 / 6)


# --- edge cases and JSON --------------------------------------------------------------------


def test_empty_image_no_targets_no_predictions():
    s = one_image(pts(np.zeros((0, 2))), pts(np.zeros((0, 2))))
    assert (s.images, s.targets, s.predictions, s.true_positives, s.false_positives) == (1, 0, 0, 0, 0)
    for undefined in (s.Pd, s.precision, s.F1, s.loc_error_px, s.AP):
        assert math.isnan(undefined)
    assert s.false_alarms_per_image == 0.0 and s.Fa == 0.0
    assert len(s.pr_curve.thresholds) == 0


def test_empty_image_does_not_disturb_pooled_rates():
    gts = [pts([[10.0, 10.0]]), pts(np.zeros((0, 2)))]
    preds = [pts([[10.0, 10.0]]), pts(np.zeros((0, 2)))]
    s = evaluate(preds, gts)[3.0]
    assert (s.images, s.Pd, s.precision, s.F1, s.AP) == (2, 1.0, 1.0, 1.0, 1.0)
    assert s.false_alarms_per_image == 0.0


def test_targets_but_no_predictions():
    s = one_image(pts(np.zeros((0, 2))), pts([[10.0, 10.0]]))
    assert s.Pd == 0.0 and s.F1 == 0.0 and s.AP == 0.0
    assert math.isnan(s.precision) and math.isnan(s.loc_error_px)


def test_predictions_but_no_targets():
    s = one_image(pts([[10.0, 10.0]], [0.7]), pts(np.zeros((0, 2))))
    assert s.precision == 0.0 and s.F1 == 0.0 and s.false_positives == 1
    assert math.isnan(s.Pd) and math.isnan(s.AP)
    assert math.isnan(s.pr_curve.recall[0])


def test_no_images_at_all():
    s = Evaluator().result()[3.0]
    assert s.images == 0 and s.pixels == 0
    assert math.isnan(s.false_alarms_per_image) and math.isnan(s.Fa) and math.isnan(s.Fa_e6)


def test_json_writes_nan_as_null():
    s = one_image(pts([[10.0, 10.0]], [0.7]), pts(np.zeros((0, 2))))
    text = json.dumps(s.to_dict(include_curve=True), allow_nan=False)
    back = json.loads(text)
    assert back["Pd"] is None and back["AP"] is None and back["loc_error_px"] is None
    assert back["precision"] == 0.0 and back["false_positives"] == 1 and back["max_dist"] == 3.0
    assert back["pr_curve"] == {"recall": [None], "precision": [0.0], "thresholds": [0.7]}
    assert "pr_curve" not in s.to_dict()


def test_format_table():
    results = evaluate(
        [pts([[10.0, 12.0], [80.0, 80.0]]), pts(np.zeros((0, 2)))],
        [pts([[10.0, 10.0], [40.0, 40.0]]), pts(np.zeros((0, 2)))],
        thresholds=(3.0, 1.0),
    )
    lines = format_table(results).splitlines()
    assert len(lines) == 4  # header, rule, one row per distance
    assert len({len(line) for line in lines}) == 1  # fixed width
    for column in ("Pd", "precision", "F1", "FA/img", "FA/MP", "Fa(1e-6)", "loc err px", "AP", "TP/targets"):
        assert column in lines[0]
    # Sorted by distance; at 1 px nothing matches, so the localisation error is n/a. Target-free
    # area: 20,000 pixels less 5 per target at 1 px (a plus sign) and 29 at 3 px (a disc).
    assert lines[2].split() == ["1", "0.0000", "0.0000", "0.0000", "1.000", "100.05", "100.000", "n/a", "0.0000", "0/2"]
    assert lines[3].split() == ["3", "0.5000", "0.5000", "0.5000", "0.500", "50.15", "50.000", "2.000", "0.2500", "1/2"]


# --- best threshold -------------------------------------------------------------------------


def test_best_threshold_small_case():
    # Targets at (10,10), (30,30). Cuts: 0.9 -> TP 1 of 1 kept: F1 2/3; 0.8 -> 1 of 2: 1/2;
    # 0.6 -> 2 of 3: 4/5; 0.3 -> 2 of 4: 2/3. Best: 0.6.
    pred = pts([[10.0, 10.0], [30.0, 31.0], [70.0, 70.0], [80.0, 80.0]], [0.9, 0.6, 0.8, 0.3])
    gt = pts([[10.0, 10.0], [30.0, 30.0]])
    choice = best_threshold([pred], [gt])
    assert choice.threshold == 0.6
    assert choice.F1 == pytest.approx(0.8) and choice.Pd == 1.0 and choice.precision == pytest.approx(2 / 3)
    assert choice.thresholds.tolist() == [0.9, 0.8, 0.6, 0.3]
    np.testing.assert_allclose(choice.f1_curve, [2 / 3, 1 / 2, 4 / 5, 2 / 3])


def test_best_threshold_prefers_the_highest_of_equal_cuts():
    # 0.9 -> TP 1, kept 1: 2/(1+2) = 2/3; 0.5 -> TP 1, kept 2: 1/2; 0.4 -> TP 2, kept 4: 2/3.
    pred = pts([[10.0, 10.0], [60.0, 60.0], [30.0, 30.0], [90.0, 90.0]], [0.9, 0.5, 0.4, 0.4])
    choice = best_threshold([pred], [pts([[10.0, 10.0], [30.0, 30.0]])])
    assert choice.threshold == 0.9 and choice.F1 == pytest.approx(2 / 3)


def test_best_threshold_agrees_with_evaluator_at_every_cut():
    # Crowded points so that predictions compete for targets and re-matching matters.
    rng = np.random.default_rng(7)
    preds, gts = [], []
    for _ in range(6):
        gt_xy = rng.uniform(10, 30, size=(rng.integers(0, 5), 2))
        near = gt_xy[rng.integers(0, len(gt_xy), size=4)] + rng.normal(0, 1.5, (4, 2)) if len(gt_xy) else np.zeros((0, 2))
        pred_xy = np.concatenate([near, rng.uniform(10, 30, size=(3, 2))])
        preds.append(pts(pred_xy, np.round(rng.uniform(0, 1, len(pred_xy)), 1)))
        gts.append(pts(gt_xy))
    choice = best_threshold(preds, gts, max_dist=2.0)
    for cut, f1 in zip(choice.thresholds, choice.f1_curve):
        expected = evaluate([p[p.score >= cut] for p in preds], gts, thresholds=(2.0,))[2.0].F1
        assert f1 == pytest.approx(expected)
    assert choice.F1 == pytest.approx(max(choice.f1_curve))


def test_smoothed_threshold_takes_a_broad_plateau_over_a_narrow_peak():
    # 10 targets. Eight hits score 0.9 and one 0.6; false alarms score 0.89, 0.88, 0.4 and lower.
    # F1 by cut: 0.9 -> 16/18 = 0.889, a peak 0.01 wide (nothing is kept above 0.9);
    # 0.88 -> 0.8 down to 0.6 -> 18/21 = 0.857, which holds over (0.4, 0.6], 0.2 wide.
    xy = [[10.0 + 9 * i, 10.0] for i in range(10)]
    false_xy = [[10.0 + 9 * i, 90.0] for i in range(6)]
    pred = pts(xy[:9] + false_xy, [0.9] * 8 + [0.6] + [0.89, 0.88, 0.4, 0.35, 0.3, 0.25])
    gt = pts(xy)
    plain = best_threshold([pred], [gt])
    assert plain.threshold == 0.9 and plain.F1 == pytest.approx(16 / 18)
    smoothed = best_threshold([pred], [gt], smooth=0.1)
    assert 0.45 < smoothed.threshold <= 0.6
    assert smoothed.F1 == pytest.approx(18 / 21) and smoothed.Pd == pytest.approx(0.9)
    kept = pred[pred.score >= smoothed.threshold]
    assert smoothed.F1 == pytest.approx(evaluate([kept], [gt], thresholds=(3.0,))[3.0].F1)


def test_smoothed_threshold_maximises_the_window_average_of_f1():
    rng = np.random.default_rng(3)
    differs = 0
    for _ in range(5):
        gt_xy = rng.uniform(5, 95, size=(12, 2))
        pred_xy = np.concatenate([gt_xy[:9] + rng.normal(0, 0.5, (9, 2)), rng.uniform(5, 95, size=(10, 2))])
        pred, gt = pts(pred_xy, rng.uniform(0, 1, len(pred_xy))), pts(gt_xy)
        choice = best_threshold([pred], [gt], smooth=0.1)
        # brute force: F1 at every grid threshold, averaged over +-0.1 (20 steps) with the ends repeated
        grid = np.round(np.arange(0, 1.0001, 0.005), 6)
        f1 = np.array([evaluate([pred[pred.score >= t]], [gt], thresholds=(3.0,))[3.0].F1 for t in grid])
        padded = np.r_[[f1[0]] * 20, f1, [f1[-1]] * 20]
        averaged = np.array([padded[i:i + 41].mean() for i in range(len(grid))])
        assert choice.threshold == pytest.approx(grid[np.argmax(averaged)])
        differs += choice.threshold != best_threshold([pred], [gt]).threshold
    assert differs  # the smoothing changed the choice at least once


def test_best_threshold_needs_targets_and_predictions():
    with pytest.raises(ValueError, match="no ground-truth targets"):
        best_threshold([pts([[1.0, 1.0]])], [pts(np.zeros((0, 2)))])
    with pytest.raises(ValueError, match="no scored predictions"):
        best_threshold([pts(np.zeros((0, 2)))], [pts([[1.0, 1.0]])])
