"""Training samples: whatever crop, zoom, flip or turn is drawn, each label stays on its target."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pinpoint.config import TrainConfig
from pinpoint.data.dataset import Sample, TrainingSet

BLOB_SIGMA = 2.0


def blob_image(xy: np.ndarray, size: tuple[int, int] = (150, 170)) -> np.ndarray:
    """Gaussian blobs of width BLOB_SIGMA centred on sub-pixel points, on a dark background."""
    rows, cols = np.mgrid[:size[0], :size[1]]
    image = np.zeros(size, np.float32)
    for x, y in xy:
        image += np.exp(-((cols - x) ** 2 + (rows - y) ** 2) / (2 * BLOB_SIGMA ** 2))
    return 0.1 + 0.8 * image


def centroid_and_width(image: np.ndarray, x: float, y: float, radius: int = 6) -> tuple[np.ndarray, float]:
    """Intensity centroid (x, y) of the blob around (x, y), and its gaussian width from the second moment."""
    top, left = int(round(y)) - radius, int(round(x)) - radius
    window = image[top:top + 2 * radius + 1, left:left + 2 * radius + 1]
    weight = np.clip(window - np.median(image), 0, None)
    rows, cols = np.mgrid[top:top + window.shape[0], left:left + window.shape[1]]
    cx, cy = (weight * cols).sum() / weight.sum(), (weight * rows).sum() / weight.sum()
    spread = (weight * ((cols - cx) ** 2 + (rows - cy) ** 2)).sum() / weight.sum() / 2
    return np.array([cx, cy]), float(np.sqrt(spread))


def test_crops_keep_every_label_on_its_target() -> None:
    xy = np.array([[40.3, 50.7], [120.6, 30.2], [90.5, 110.5], [150.2, 120.9]])
    sample = Sample("blobs", blob_image(xy), xy, Path("blobs.png"))
    cfg = TrainConfig(img_size=0, crop_size=64, crop_on_target=0.8, intensity_jitter=0.0)
    dataset = TrainingSet([sample], cfg, "heatmap")
    widths, checked = [], 0
    for epoch in range(60):
        dataset.set_epoch(epoch)
        image, target, _ = dataset[0]
        image = image[0].numpy()
        assert image.shape == (64, 64) and target.shape == (1, 64, 64)
        rng = np.random.default_rng((0, epoch, 0))
        points = dataset._augment(*dataset._crop(dataset.images[0], xy, None, rng), rng)[1]  # the same draws again
        for x, y in points:
            if 7 <= x <= 56 and 7 <= y <= 56:  # whole blob inside the crop
                centre, width = centroid_and_width(image, x, y)
                assert np.hypot(*(centre - [x, y])) < 0.15, (epoch, x, y, centre)
                widths.append(width / BLOB_SIGMA)
                checked += 1
    assert checked > 30
    assert np.allclose(widths, 1.0, atol=0.05)  # crops at native scale: every blob keeps its width


@pytest.mark.parametrize("blob_sigma", [0.0, 1.0])
def test_an_extended_target_gets_a_gaussian_as_wide_as_its_blob(blob_sigma: float) -> None:
    rows, cols = np.mgrid[:96, :96]
    image = np.full((96, 96), 0.1, np.float32)
    image[(cols - 30) ** 2 + (rows - 40) ** 2 <= 36] = 0.9  # a disc of radius 6 (113 px)
    image[(cols - 70) ** 2 + (rows - 60) ** 2 <= 1] = 0.9  # a 5-pixel spot
    xy = np.array([[30.0, 40.0], [70.0, 60.0]])
    cfg = TrainConfig(img_size=0, crop_size=96, crop_on_target=0.0, flip=False, vflip=False, rot90=False, intensity_jitter=0.0,
                      sigma=2.0, blob_sigma=blob_sigma)
    _, target, _ = TrainingSet([Sample("disc", image, xy, Path("disc.png"))], cfg, "heatmap").whole(0, 1)
    widths = [centroid_and_width(target[0].numpy(), x, y, radius=r)[1] for (x, y), r in zip(xy, (20, 10))]
    disc_radius = np.sqrt(113 / np.pi)
    assert widths[0] == pytest.approx(disc_radius if blob_sigma else 2.0, rel=0.05)
    assert widths[1] == pytest.approx(2.0, rel=0.05)  # its blob is smaller than sigma: sigma stays


@pytest.mark.parametrize("upright", [True, False])
def test_without_up_down_flips_and_quarter_turns_the_sky_stays_above(upright: bool) -> None:
    # Bright top half, dark bottom half, and a bright left edge column to see left-right flips by.
    image = np.zeros((64, 64), np.float32)
    image[:32] = 1.0
    image[:, 0] += 0.5
    sample = Sample("sky", image, np.zeros((0, 2)), Path("sky.png"))
    cfg = TrainConfig(img_size=0, crop_size=64, crop_on_target=0.0, vflip=not upright, rot90=not upright, intensity_jitter=0.0)
    dataset = TrainingSet([sample], cfg, "heatmap")
    sky_above, mirrored = [], []
    for epoch in range(40):
        dataset.set_epoch(epoch)
        crop = dataset[0][0][0].numpy()
        sky_above.append(crop[:32].mean() > crop[32:].mean() + 1)
        mirrored.append(crop[:, -1].mean() > crop[:, 0].mean())
    assert any(mirrored) and not all(mirrored)  # left-right flips either way
    assert all(sky_above) if upright else not all(sky_above)
