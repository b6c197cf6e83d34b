"""The heatmap codec: exact gaussians in, exact peaks out, and sub-pixel centres to 0.05 px."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pinpoint.codecs.heatmap import decode, encode, find_peaks
from pinpoint.codecs.refine import refine_peaks


def _gaussian(x: float, y: float, cx: float, cy: float, sigma: float) -> float:
    return math.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma**2))


def _batch(*maps: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack(maps).astype(np.float32))[:, None]


# ---------------------------------------------------------------- encode


def test_peak_is_one_at_an_integer_point() -> None:
    heatmap = encode(np.array([[5.0, 7.0]]), (15, 20), 2.0)
    assert heatmap.shape == (15, 20) and heatmap.dtype == np.float32
    assert heatmap[7, 5] == 1.0
    assert np.count_nonzero(heatmap == 1.0) == 1
    assert heatmap.min() >= 0.0


@pytest.mark.parametrize("sigma", [1.0, 2.0, 3.0])
def test_exact_gaussian_values_at_known_offsets(sigma: float) -> None:
    cx, cy = 9.25, 7.5
    heatmap = encode(np.array([[cx, cy]]), (16, 20), sigma)
    for dx, dy in [(0, 0), (1, 0), (0, 1), (-1, -1), (2, -1), (-3, 2)]:
        x, y = 9 + dx, 7 + dy
        assert heatmap[y, x] == pytest.approx(_gaussian(x, y, cx, cy, sigma), rel=1e-6), (dx, dy)
    # hand-computed for sigma = 2: offsets (-0.25, -0.5) -> exp(-0.3125 / 8)
    if sigma == 2.0:
        assert heatmap[7, 9] == pytest.approx(math.exp(-0.3125 / 8), rel=1e-6)


def test_overlapping_gaussians_merge_by_max_not_sum() -> None:
    sigma = 2.0
    heatmap = encode(np.array([[10.0, 10.0], [12.0, 10.0]]), (21, 23), sigma)
    assert heatmap[10, 10] == 1.0 and heatmap[10, 12] == 1.0  # a sum would give 1 + exp(-0.5)
    midway = math.exp(-1 / (2 * sigma**2))  # both contribute this much at (11, 10); a sum doubles it
    assert heatmap[10, 11] == pytest.approx(midway, rel=1e-6)
    assert heatmap.max() == 1.0


@pytest.mark.parametrize("point", [(0.0, 19.0), (0.3, 18.8), (23.0, 0.0)])
def test_point_on_the_border_keeps_its_centre(point: tuple[float, float]) -> None:
    size, sigma = (20, 24), 1.5
    heatmap = encode(np.array([point]), size, sigma)
    rows, cols = np.mgrid[: size[0], : size[1]]
    analytic = np.exp(-((cols - point[0]) ** 2 + (rows - point[1]) ** 2) / (2 * sigma**2))
    near = np.hypot(cols - point[0], rows - point[1]) <= 3 * sigma
    np.testing.assert_allclose(heatmap[near], analytic[near], rtol=1e-6)
    row, col = np.unravel_index(np.argmax(heatmap), size)
    assert (col, row) == (round(point[0]), round(point[1]))


def test_points_outside_the_image() -> None:
    sigma = 1.0
    points = np.array([[-50.0, 5.0], [200.0, 300.0], [-1e9, 1e9], [-2.0, 5.0]])
    heatmap = encode(points, (10, 12), sigma)
    # only the point 2 px left of the image reaches in, with its tail
    assert heatmap[5, 0] == pytest.approx(math.exp(-4 / 2), rel=1e-6)
    assert heatmap[5, 1] == pytest.approx(math.exp(-9 / 2), rel=1e-6)
    assert heatmap[:, 5:].max() == 0.0
    assert np.count_nonzero(encode(points[:3], (10, 12), sigma)) == 0


def test_no_points_gives_an_empty_map() -> None:
    assert not encode(np.zeros((0, 2)), (6, 7), 2.0).any()


# ---------------------------------------------------------------- decode


PLANTED = {(3, 4): 0.875, (10, 12): 0.5, (20, 5): 0.75, (0, 0): 0.25, (23, 15): 0.125}  # (x, y): height, exact in float32


def _planted(size: tuple[int, int] = (16, 24)) -> np.ndarray:
    heatmap = np.zeros(size, np.float32)
    for (x, y), value in PLANTED.items():
        heatmap[y, x] = value
    return heatmap


def test_planted_peaks_found_sorted_with_their_scores() -> None:
    (xy, scores, _), = decode(_batch(_planted()), threshold=0.1, subpixel=False)
    expected = sorted(PLANTED.items(), key=lambda item: -item[1])
    assert xy.tolist() == [list(map(float, p)) for p, _ in expected]
    assert scores.tolist() == [s for _, s in expected]
    assert xy.dtype == np.float64 and scores.dtype == np.float64


def test_top_k() -> None:
    (xy, scores, _), = decode(_batch(_planted()), top_k=2, threshold=0.1, subpixel=False)
    assert xy.tolist() == [[3.0, 4.0], [20.0, 5.0]]
    assert scores.tolist() == [0.875, 0.75]


def test_threshold_is_inclusive() -> None:
    (xy, scores, _), = decode(_batch(_planted()), threshold=0.5, subpixel=False)
    assert len(scores) == 3 and scores.min() == 0.5
    (xy, scores, _), = decode(_batch(_planted()), threshold=0.51, subpixel=False)
    assert len(scores) == 2


def test_nms_removes_non_maxima_within_3x3() -> None:
    heatmap = np.zeros((24, 24), np.float32)
    heatmap[15, 15] = 0.8
    heatmap[15, 16] = 0.6  # touching the 0.8: suppressed
    heatmap[14, 14] = 0.7  # diagonal neighbour: suppressed
    heatmap[17, 17] = 0.7  # two pixels away: a maximum of its own 3x3
    (xy, scores, _), = decode(_batch(heatmap), threshold=0.1, subpixel=False)
    assert xy.tolist() == [[15.0, 15.0], [17.0, 17.0]]
    np.testing.assert_allclose(scores, [0.8, 0.7])


def test_plateau_gives_one_peak() -> None:
    # A gaussian centred exactly between two pixels has two equal maxima; a saturated sigmoid
    # has flat tops. Either must come out as one detection, not two.
    heatmap = encode(np.array([[10.5, 8.0], [4.0, 4.5]]), (20, 20), 1.5)
    (xy, _, _), = decode(_batch(heatmap), threshold=0.1, subpixel=True)
    assert len(xy) == 2
    np.testing.assert_allclose(sorted(xy.tolist()), [[4.0, 4.5], [10.5, 8.0]], atol=0.01)
    flat = np.zeros((10, 10), np.float32)
    flat[3:6, 2:6] = 1.0
    (xy, _, _), = decode(_batch(flat), threshold=0.1, subpixel=False)
    assert len(xy) == 1


def test_batch_decoding() -> None:
    maps = [encode(np.array(points).reshape(-1, 2), (20, 30), 1.5)
            for points in ([[3, 4]], [[10, 10], [25, 15], [2, 17]], [])]
    results = decode(_batch(*maps), threshold=0.5, subpixel=False)
    assert len(results) == 3
    assert results[0][0].tolist() == [[3.0, 4.0]]
    assert sorted(results[1][0].tolist()) == [[2.0, 17.0], [10.0, 10.0], [25.0, 15.0]]
    np.testing.assert_array_equal(results[1][1], [1.0, 1.0, 1.0])
    assert results[2][0].shape == (0, 2) and results[2][1].shape == (0,)


def test_find_peaks_shapes_and_keep_mask() -> None:
    xy, scores, keep = find_peaks(_batch(_planted(), np.zeros((16, 24))), top_k=7, threshold=0.2)
    assert xy.shape == (2, 7, 2) and scores.shape == (2, 7) and keep.shape == (2, 7)
    assert keep[0].tolist() == [True] * 4 + [False] * 3
    assert not keep[1].any()  # a blank map has no peak, even with a zero threshold below
    _, _, keep = find_peaks(_batch(np.zeros((16, 24))), threshold=0.0)
    assert not keep.any()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_low_precision_heatmaps_keep_exact_positions(dtype: torch.dtype) -> None:
    # Past 2048 (float16) or 256 (bfloat16) whole numbers are not all representable.
    heatmap = np.zeros((4, 3001), np.float32)
    heatmap[2, 2999] = 1.0
    heatmap[1, 257] = 0.5
    (xy, scores, _), = decode(_batch(heatmap).to(dtype), threshold=0.1, subpixel=False)
    assert xy.tolist() == [[2999.0, 2.0], [257.0, 1.0]]
    np.testing.assert_allclose(scores, [1.0, 0.5])


def test_decode_accepts_a_tensor_that_requires_grad() -> None:
    heatmap = _batch(_planted()).requires_grad_()
    (xy, _, _), = decode(heatmap, threshold=0.1)
    assert len(xy) == len(PLANTED)


# ---------------------------------------------------------------- sub-pixel


def _random_points(rng: np.random.Generator, count: int, size: tuple[int, int], margin: float = 2.0) -> np.ndarray:
    height, width = size
    xy = np.column_stack([rng.uniform(margin, width - 1 - margin, count), rng.uniform(margin, height - 1 - margin, count)])
    # a quarter hug the borders, 2 to 3 px in
    near = rng.uniform(margin, margin + 1, (count // 4, 2))
    xy[: count // 4 : 2, 0] = near[::2, 0]
    xy[1 : count // 4 : 2, 1] = height - 1 - near[1::2, 1]
    return xy


@pytest.mark.parametrize("sigma", [1.0, 1.5, 2.0, 3.0])
def test_subpixel_round_trip_within_005_px(sigma: float) -> None:
    size = (32, 40)
    rng = np.random.default_rng(int(sigma * 10))
    truth = _random_points(rng, 48, size)
    maps = _batch(*[encode(p[None], size, sigma) for p in truth])

    refined = np.array([points[0] for points, _, _ in decode(maps, top_k=1, subpixel=True)])
    plain = np.array([points[0] for points, _, _ in decode(maps, top_k=1, subpixel=False)])

    refined_error = np.hypot(*(refined - truth).T)
    plain_error = np.abs(plain - truth)
    assert refined_error.max() < 0.05, refined_error.max()
    assert plain_error.max() <= 0.5 + 1e-9  # arg-max is the nearest pixel, never farther
    plain_error = np.hypot(*plain_error.T)
    assert plain_error.mean() > 0.2  # uniform offsets: about 0.38 px expected
    assert refined_error.mean() < plain_error.mean() / 10


def test_refine_on_the_border_moves_only_along_the_free_axis() -> None:
    heatmap = encode(np.array([[0.0, 10.3]]), (20, 20), 1.5)
    refined = refine_peaks(heatmap, np.array([[0.0, 10.0]]))
    assert refined[0, 0] == 0.0
    assert refined[0, 1] == pytest.approx(10.3, abs=0.01)


def test_refine_leaves_a_non_maximum_alone() -> None:
    flat = np.zeros((9, 9), np.float32)
    np.testing.assert_array_equal(refine_peaks(flat, np.array([[4.0, 4.0]])), [[4.0, 4.0]])
    valley = 1.0 - encode(np.array([[4.2, 4.0]]), (9, 9), 1.5)  # a minimum: the Newton step would climb down
    np.testing.assert_array_equal(refine_peaks(valley, np.array([[4.0, 4.0]])), [[4.0, 4.0]])


def test_refine_with_blur_stays_on_centre() -> None:
    heatmap = encode(np.array([[12.35, 9.8]]), (24, 24), 2.0)
    refined = refine_peaks(heatmap, np.array([[12.0, 10.0]]), blur_sigma=1.0)
    np.testing.assert_allclose(refined, [[12.35, 9.8]], atol=0.05)


@pytest.mark.parametrize("point", [(2.3, 10.2), (37.6, 10.2), (12.4, 2.45), (12.4, 29.3), (2.5, 2.5)])
def test_refine_with_blur_near_the_border(point: tuple[float, float]) -> None:
    # 2 to 3 px from the edge the blur would read reflected pixels and pull the peak by ~0.1 px.
    size = (32, 40)
    for sigma in (1.0, 2.0, 3.0):
        heatmap = encode(np.array([point]), size, sigma)
        start = np.floor(np.array([point]) + 0.5)
        refined = refine_peaks(heatmap, start, blur_sigma=1.0)
        np.testing.assert_allclose(refined, [point], atol=0.05, err_msg=f"sigma {sigma}")


def test_each_point_can_have_its_own_width() -> None:
    xy = np.array([[20.0, 20.0], [60.3, 40.6]])
    heatmap = encode(xy, (64, 96), np.array([1.0, 3.0]))
    np.testing.assert_allclose(heatmap[:40, :40], encode(xy[:1], (40, 40), 1.0), atol=1e-7)
    np.testing.assert_allclose(heatmap[:, 40:], encode(xy[1:] - [40, 0], (64, 56), 3.0), atol=1e-7)
    np.testing.assert_array_equal(encode(xy, (64, 96), np.array([2.0, 2.0])), encode(xy, (64, 96), 2.0))


@pytest.mark.parametrize("kernel", [1, 3, 7])
def test_local_maxima_above_a_floor_are_the_dense_ones_above_it(kernel: int) -> None:
    from pinpoint.codecs.heatmap import local_maxima

    generator = torch.Generator().manual_seed(kernel)
    for _ in range(20):
        heatmap = torch.round(torch.rand(2, 1, 37, 53, generator=generator) * 8) / 8  # plateaus of equal pixels
        heatmap[heatmap < 0.7] = 0  # mostly empty, as a heatmap is: the floor then takes the sparse path
        for floor in (0.25, 0.75, 1.0):
            expected = local_maxima(heatmap, kernel) & (heatmap >= floor)
            assert torch.equal(local_maxima(heatmap, kernel, floor=floor), expected)
