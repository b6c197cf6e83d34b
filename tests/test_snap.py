"""Snapping points onto their blobs' centroids: where it moves a point, where it must not, and in a Detector."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pinpoint.codecs.heatmap import encode
from pinpoint.codecs.snap import blob_radii, find_blob, snap_and_merge, snap_to_blobs
from pinpoint.predict import Detector


def _scene(height: int = 64, width: int = 80, background: float = 20.0) -> np.ndarray:
    return np.full((height, width), background)


def _weighted_centroid(image: np.ndarray, background: float) -> np.ndarray:
    rows, cols = np.nonzero(image > background)
    weight = image[rows, cols] - background
    return np.array([(cols * weight).sum() / weight.sum(), (rows * weight).sum() / weight.sum()])


def test_a_point_on_the_hot_end_of_a_long_target_moves_to_its_centroid() -> None:
    image = _scene()
    image[30:34, 25:40] = 120.0  # a ship 15 px long
    image[31:33, 37:40] = 200.0  # its hot stern
    snapped = snap_to_blobs(image, np.array([[38.0, 31.0]]))
    np.testing.assert_allclose(snapped[0], _weighted_centroid(image, 20.0), atol=1e-9)
    assert snapped[0, 0] < 33  # 5 px back towards the middle


@pytest.mark.parametrize("centre", [(30.0, 25.0), (30.3, 25.4), (41.5, 20.75)])
def test_a_small_spot_snaps_to_its_subpixel_centre(centre: tuple[float, float]) -> None:
    image = 20.0 + 100.0 * encode(np.array([centre]), (64, 80), 1.5)
    start = np.round(centre)
    snapped = snap_to_blobs(image, start[None])[0]
    # half-maximum truncation on the pixel grid leaves a small bias; the integer start is up to 0.56 px off
    assert np.hypot(*(snapped - centre)) < 0.2


def test_a_dark_point_and_a_point_in_a_large_bright_region_stay() -> None:
    image = _scene()
    image[10, 10] = 5.0  # colder than its surroundings
    image[30:64, 40:80] = 150.0  # a bright region larger than the window: cloud, not a target
    points = np.array([[10.0, 10.0], [60.0, 45.0]])
    np.testing.assert_array_equal(snap_to_blobs(image, points), points)


def test_a_target_on_the_image_border_snaps_inside_the_image() -> None:
    image = _scene()
    image[0:3, 0:4] = 90.0
    snapped = snap_to_blobs(image, np.array([[0.0, 0.0]]))[0]
    np.testing.assert_allclose(snapped, [1.5, 1.0])


def test_no_points() -> None:
    assert snap_to_blobs(_scene(), np.zeros((0, 2))).shape == (0, 2)
    assert blob_radii(_scene(), np.zeros((0, 2))).shape == (0,)


def test_blob_radii_measure_discs_and_skip_what_does_not_fit() -> None:
    image = _scene()
    rows, cols = np.mgrid[:64, :80]
    image[(cols - 20) ** 2 + (rows - 20) ** 2 <= 25] = 100.0  # a disc of radius 5: 81 pixels
    image[(cols - 50) ** 2 + (rows - 40) ** 2 <= 1] = 100.0  # a 5-pixel cross
    image[10, 10] = 5.0  # colder than its surroundings
    image[45:64, 0:30] = 150.0  # larger than the window around (15, 55)
    radii = blob_radii(image, np.array([[21.0, 19.0], [50.0, 40.0], [10.0, 10.0], [15.0, 55.0]]))
    np.testing.assert_allclose(radii, [np.sqrt(81 / np.pi), np.sqrt(5 / np.pi), 0.0, 0.0])


def test_points_closer_than_the_distance_merge_and_keep_the_highest_score() -> None:
    image = _scene()  # flat: no blob anywhere, so the points stay where they are
    xy = np.array([[10.0, 10.0], [12.0, 10.0], [13.0, 10.0], [20.0, 20.0]])
    merged_xy, merged_scores = snap_and_merge(image, xy, np.array([0.9, 0.8, 0.7, 0.6]), 3.0)
    # 12 is 2 px from 10 and goes; 13 is 3 px from 10 (not closer than 3) and stays
    np.testing.assert_array_equal(merged_xy, xy[[0, 2, 3]])
    np.testing.assert_array_equal(merged_scores, [0.9, 0.7, 0.6])


def _ship_with_two_hot_spots() -> np.ndarray:
    image = _scene()
    image[30:35, 24:44] = 100.0  # a hull 20 px long
    image[31:34, 26:29] = 200.0  # a hot spot near its bow
    image[31:34, 36:39] = 150.0  # a cooler one near its stern
    return image


def test_two_peaks_on_one_target_merge_onto_the_whole_blob() -> None:
    image = _ship_with_two_hot_spots()
    xy = np.array([[27.0, 32.0], [37.0, 32.0]])  # 10 px apart: two targets by distance alone
    merged_xy, merged_scores = snap_and_merge(image, xy, np.array([0.9, 0.6]), 3.0)
    hull = find_blob(image, 37.0, 32.0)  # cut at half of the cooler spot's height: the whole hull
    assert hull is not None and len(hull[0]) == 5 * 20
    assert len(find_blob(image, 27.0, 32.0)[0]) == 9  # cut at half of the bow spot's height: the spot alone
    assert len(merged_xy) == 1 and merged_scores[0] == 0.9
    assert abs(merged_xy[0, 0] - 33.5) < 1  # near the hull's middle, 6 px from the bow's spot
    np.testing.assert_allclose(merged_xy[0], snap_to_blobs(image, xy[1:])[0])


def test_a_much_weaker_peak_does_not_drag_a_target_off_its_spot() -> None:
    image = _scene()
    image[18:33, 18:33] = 24.0  # a faint bump 15 px wide
    image[25:28, 25:28] = 200.0  # a bright target on it
    # the faint peak's blob (half of its own height) is the whole bump, target included
    assert len(find_blob(image, 20.0, 20.0)[0]) == 15 * 15
    merged_xy, merged_scores = snap_and_merge(image, np.array([[26.0, 26.0], [20.0, 20.0]]), np.array([0.9, 0.2]), 3.0)
    # the weak peak snaps onto the bump's centroid, within 3 px of the target, and merges into it,
    # but the target stays on its own spot, with its own score
    np.testing.assert_allclose(merged_xy, [[26.0, 26.0]])
    np.testing.assert_array_equal(merged_scores, [0.9])


def test_a_much_weaker_peak_whose_blob_holds_a_target_stays_a_point_of_its_own() -> None:
    image = _scene()
    image[18:33, 18:33] = 30.0  # a faint bump 15 px wide
    image[29:32, 29:32] = 200.0  # a bright target near its corner
    weak = find_blob(image, 20.0, 20.0)
    assert len(weak[0]) == 15 * 15  # the target is in the weak peak's blob
    merged_xy, merged_scores = snap_and_merge(image, np.array([[30.0, 30.0], [20.0, 20.0]]), np.array([0.9, 0.2]), 3.0)
    assert np.hypot(*(merged_xy[1] - merged_xy[0])) > 3  # its snapped point is not the target's
    np.testing.assert_allclose(merged_xy[0], [30.0, 30.0])
    np.testing.assert_array_equal(merged_scores, [0.9, 0.2])


def test_two_targets_on_separate_blobs_stay_apart() -> None:
    image = _scene()
    image[30:33, 20:23] = 200.0
    image[30:33, 30:33] = 150.0
    merged_xy, merged_scores = snap_and_merge(image, np.array([[21.0, 31.0], [31.0, 31.0]]), np.array([0.9, 0.6]), 3.0)
    np.testing.assert_allclose(merged_xy, [[21.0, 31.0], [31.0, 31.0]])
    np.testing.assert_array_equal(merged_scores, [0.9, 0.6])


class BothEndsModel:
    """A stand-in network whose heatmap peaks on both ends of a long target (farther apart than the NMS window)."""

    name = "both-ends"
    threads = 1

    def __call__(self, batch: np.ndarray) -> torch.Tensor:
        heat = np.maximum(0.9 * encode(np.array([[25.0, 31.0]]), batch.shape[2:], 1.0),
                          0.6 * encode(np.array([[36.0, 31.0]]), batch.shape[2:], 1.0))
        return torch.from_numpy(np.broadcast_to(heat, batch.shape).astype(np.float32).copy())


@pytest.mark.parametrize("snap", [False, True])
def test_a_detector_with_snap_reports_one_point_at_the_centre_of_a_long_target(snap: bool) -> None:
    settings = {"output": "heatmap", "stride": 16, "img_size": 0, "threshold": 0.3, "top_k": 10, "nms_kernel": 7,
                "subpixel": True, "tta": False, "snap": snap}
    image = np.full((64, 80), 20, np.uint8)
    image[30:34, 24:38] = 120
    points = Detector(None, settings, backend=BothEndsModel()).predict(image)
    if snap:
        np.testing.assert_allclose(points.xy, [[30.5, 31.5]], atol=1e-6)
        np.testing.assert_allclose(points.score, [0.9], atol=1e-6)
    else:
        assert len(points) == 2 and np.abs(points.xy[:, 0] - 30.5).min() > 5


class FixedHeatmapModel:
    """A stand-in network that returns the same heatmap for every image: peaks where it is told."""

    name = "fixed"
    threads = 1

    def __init__(self, peaks: np.ndarray, size: tuple[int, int]):
        self.heat = encode(peaks, size, 1.5)

    def __call__(self, batch: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.broadcast_to(self.heat, batch.shape).astype(np.float32).copy())


def _validate(peaks: np.ndarray, images: list[np.ndarray], labels: np.ndarray) -> dict:
    from pinpoint.data.dataset import Sample
    from pinpoint.train import evaluate_detector

    settings = {"output": "heatmap", "stride": 16, "img_size": 0, "threshold": 0.3, "top_k": 10, "nms_kernel": 7,
                "subpixel": True, "tta": False, "snap": True}
    detector = Detector(None, settings, backend=FixedHeatmapModel(peaks, images[0].shape))
    samples = [Sample(f"s{i}", image, labels, Path(f"s{i}.png")) for i, image in enumerate(images)]
    row = evaluate_detector(detector, samples, 3.0)
    assert detector.settings["snap"] is True  # validation leaves the detector as it found it
    return row


def test_validation_keeps_snapping_where_it_brings_peaks_onto_their_targets() -> None:
    rng = np.random.default_rng(0)
    images = []
    for _ in range(4):
        image = 0.2 + rng.normal(0, 0.005, (64, 64))
        image[30:34, 22:38] += 0.5  # a ship 16 px long, its hot end on the right
        image[31:33, 35:38] += 0.2
        images.append(image.astype(np.float32))
    labels = _weighted_centroid(np.where(np.abs(images[0] - 0.2) > 0.1, images[0], 0.2).astype(np.float64), 0.2)[None]
    row = _validate(np.array([[36.0, 31.5]]), images, labels)  # the network peaks on the hot end, 6 px off
    assert row["val_snap"] == 1 and row["val_f1"] == 1.0


def test_validation_drops_snapping_where_it_only_adds_noise() -> None:
    rng = np.random.default_rng(0)
    labels = np.array([[30.3, 25.6]])
    rows, cols = np.mgrid[:64, :64]
    spot = 0.25 * np.exp(-((cols - 30.3) ** 2 + (rows - 25.6) ** 2) / (2 * 1.5 ** 2))
    images = [(0.5 + spot + rng.normal(0, 0.08, (64, 64))).astype(np.float32) for _ in range(6)]
    row = _validate(labels, images, labels)  # the network peaks on the centre of a faint spot in noise
    assert row["val_snap"] == 0 and row["val_f1"] == 1.0
