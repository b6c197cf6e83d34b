"""Training-free detectors on synthetic frames: planted spots found at their true positions, ranked by brightness."""

from __future__ import annotations

import numpy as np
import pytest

from pinpoint.classical import CLASSICAL_METHODS, detect_classical, local_contrast_detect, tophat_detect

HEIGHT, WIDTH = 64, 96
# (x, y, amplitude): fractional centres, three brightness levels, all away from the border.
SPOTS = [(20.3, 15.6, 0.15), (60.0, 40.2, 0.35), (80.7, 20.4, 0.25)]


def planted_frame(seed: int = 0) -> np.ndarray:
    """A smooth sloping background with mild noise and three small gaussian spots (sigma 1 px)."""
    rows, cols = np.indices((HEIGHT, WIDTH), dtype=np.float64)
    image = 0.2 + 0.2 * cols / WIDTH + 0.1 * np.sin(rows / 15.0)
    for x, y, amplitude in SPOTS:
        image += amplitude * np.exp(-((cols - x) ** 2 + (rows - y) ** 2) / 2.0)
    image += np.random.default_rng(seed).normal(0.0, 0.003, image.shape)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


@pytest.mark.parametrize("method", ["tophat", "local-contrast"])
def test_finds_planted_spots_at_their_centres_and_ranks_them_by_brightness(method):
    points = detect_classical(planted_frame(), method)
    assert points.image_size == (HEIGHT, WIDTH)
    assert len(points) == len(SPOTS)  # no false alarms on smooth background with mild noise
    truth = np.array([spot[:2] for spot in SPOTS])
    nearest = np.linalg.norm(points.xy[:, None] - truth[None], axis=2).argmin(axis=1)
    assert sorted(nearest) == [0, 1, 2]
    np.testing.assert_array_less(np.linalg.norm(points.xy - truth[nearest], axis=1), 0.5)
    amplitude = np.array([spot[2] for spot in SPOTS])[nearest]
    assert np.all(np.diff(points.score) < 0)  # best first...
    assert np.all(np.diff(amplitude) < 0)  # ... and best means brightest
    assert np.all((points.score > 0.5) & (points.score < 1.0))  # 0.5 is the threshold itself


@pytest.mark.parametrize("method", ["tophat", "local-contrast"])
@pytest.mark.parametrize("fill", [0.0, 0.6])
def test_flat_image_gives_no_points(method, fill):
    points = detect_classical(np.full((32, 40), fill, np.float32), method)
    assert len(points) == 0 and points.xy.shape == (0, 2) and points.image_size == (32, 40)


def test_local_contrast_ignores_a_straight_edge():
    # An edge is brighter than its surroundings on one side only, so every opposite pair has a zero difference.
    image = np.zeros((40, 40), np.float32)
    image[:, 20:] = 1.0
    assert len(local_contrast_detect(image)) == 0


def test_tophat_ignores_blobs_wider_than_its_kernel():
    image = np.zeros((40, 40), np.float32)
    image[5:20, 5:20] = 1.0  # 15 px wide: survives a 9 x 9 opening, so the top-hat is zero everywhere
    image[30, 30] = 0.5  # one small target
    points = tophat_detect(image)
    np.testing.assert_allclose(points.xy, [[30.0, 30.0]])


def test_min_area_drops_single_pixel_responses():
    image = np.zeros((30, 30), np.float32)
    image[10, 10] = 1.0
    image[20:22, 20:22] = 1.0
    assert len(tophat_detect(image, k_sigma=3.0)) == 2
    np.testing.assert_allclose(tophat_detect(image, k_sigma=3.0, min_area=2).xy, [[20.5, 20.5]])


def test_registry_and_bad_settings():
    assert set(CLASSICAL_METHODS) == {"tophat", "local-contrast"}
    with pytest.raises(ValueError, match="unknown classical method 'hough'"):
        detect_classical(np.zeros((8, 8), np.float32), "hough")
    with pytest.raises(ValueError, match="odd"):
        local_contrast_detect(np.zeros((8, 8), np.float32), scales=(3, 4))
    with pytest.raises(ValueError, match="k_sigma"):
        tophat_detect(planted_frame(), k_sigma=0.0)
