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


@pytest.mark.parametrize("scale_jitter", [0.0, 0.5])
def test_crops_keep_every_label_on_its_target(scale_jitter: float) -> None:
    xy = np.array([[40.3, 50.7], [120.6, 30.2], [90.5, 110.5], [150.2, 120.9]])
    sample = Sample("blobs", blob_image(xy), xy, Path("blobs.png"))
    cfg = TrainConfig(img_size=0, crop_size=64, crop_on_target=0.8, scale_jitter=scale_jitter, intensity_jitter=0.0)
    dataset = TrainingSet([sample], cfg, "heatmap")
    widths, checked = [], 0
    for epoch in range(60):
        dataset.set_epoch(epoch)
        image, target, _ = dataset[0]
        image = image[0].numpy()
        assert image.shape == (64, 64) and target.shape == (1, 64, 64)
        rng = np.random.default_rng((0, epoch, 0))
        points = dataset._augment(*dataset._crop(dataset.images[0], xy, rng), rng)[1]  # the same draws again
        for x, y in points:
            if 7 <= x <= 56 and 7 <= y <= 56:  # whole blob inside the crop
                centre, width = centroid_and_width(image, x, y)
                assert np.hypot(*(centre - [x, y])) < 0.15, (epoch, x, y, centre)
                widths.append(width / BLOB_SIGMA)
                checked += 1
    assert checked > 30
    if scale_jitter:  # zooms spread over [1 / 1.5, 1.5]
        assert min(widths) < 0.85 and max(widths) > 1.2 and 0.6 < min(widths) and max(widths) < 1.6
    else:
        assert np.allclose(widths, 1.0, atol=0.05)


def test_pasted_targets_are_labelled_on_their_blobs() -> None:
    xy_a = np.array([[40.3, 50.7], [120.6, 30.2]])
    xy_b = np.array([[60.5, 80.25], [100.8, 40.4]])
    samples = [Sample("a", blob_image(xy_a), xy_a, Path("a.png")), Sample("b", blob_image(xy_b), xy_b, Path("b.png"))]
    cfg = TrainConfig(img_size=0, crop_size=64, crop_on_target=0.5, paste=3, intensity_jitter=0.0)
    dataset = TrainingSet(samples, cfg, "heatmap")
    assert len(dataset.donors) == 4
    pasted, checked = 0, 0
    for epoch in range(40):
        dataset.set_epoch(epoch)
        image = dataset[1][0][0].numpy()
        rng = np.random.default_rng((0, epoch, 1))
        cropped = dataset._crop(dataset.images[1], xy_b, rng)
        points = dataset._augment(*dataset._paste(*cropped, rng), rng)[1]  # the same draws again
        pasted += len(points) - len(cropped[1])
        for x, y in points:
            if 7 <= x <= 56 and 7 <= y <= 56:
                centre, _ = centroid_and_width(image, x, y)
                assert np.hypot(*(centre - [x, y])) < 0.15, (epoch, x, y, centre)
                checked += 1
    assert pasted > 30 and checked > pasted  # 0 to 3 per crop, every one on a blob
