"""Training samples: whatever crop, zoom, flip or turn is drawn, each label stays on its target."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

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


def test_dimming_fades_some_targets_in_place_and_nothing_else() -> None:
    xy = np.array([[40.3, 50.7], [120.6, 30.2], [3.4, 70.5]])  # the third is cut by the left edge
    sample = Sample("blobs", blob_image(xy), xy, Path("blobs.png"))
    dataset = TrainingSet([sample], TrainConfig(img_size=0, dim=0.8), "heatmap")
    image = dataset.images[0]
    rows, cols = np.mgrid[:image.shape[0], :image.shape[1]]
    near = np.zeros(image.shape, bool)
    for x, y in xy:
        near |= (np.abs(cols - round(x)) <= 7) & (np.abs(rows - round(y)) <= 7)
    shares = []
    for seed in range(40):
        dimmed = dataset._dim(image, xy, np.random.default_rng(seed))
        assert np.array_equal(dimmed[~near], image[~near])  # the background stays as it was
        for x, y in xy[:2]:
            before, after = (float(a[int(round(y)), int(round(x))] - np.median(image)) for a in (image, dimmed))
            shares.append(after / before)
            if after / before < 0.99:  # a dimmed blob is fainter, not moved
                centre, _ = centroid_and_width(dimmed, x, y)
                assert np.hypot(*(centre - [x, y])) < 0.15, (seed, x, y, centre)
    shares = np.array(shares)
    assert 0.2 <= shares.min() and shares.max() <= 1 + 1e-6  # at most 80% of the contrast is taken away
    assert 0.3 < np.mean(shares > 1 - 1e-6) < 0.7 and shares.min() < 0.4  # about half are left alone


@pytest.mark.parametrize("scale_jitter", [0.0, 0.5])
def test_a_teachers_map_is_cut_and_turned_with_the_image(scale_jitter: float) -> None:
    # The teacher's "heatmap" here is the standardised image itself: whatever crops, zooms, flips and
    # turns do to the grey channel, the soft target must match it pixel for pixel, up to the gain
    # and offset of the intensity jitter (which must leave the teacher's map alone).
    xy = np.array([[40.3, 50.7], [120.6, 30.2], [90.5, 110.5]])
    noise = 0.05 * np.random.default_rng(0).standard_normal((150, 170)).astype(np.float32)  # no flat crop
    sample = Sample("blobs", blob_image(xy) + noise, xy, Path("blobs.png"))
    soft = (sample.image - sample.image.mean()) / sample.image.std()
    cfg = TrainConfig(img_size=0, crop_size=64, crop_on_target=0.5, scale_jitter=scale_jitter, intensity_jitter=0.3)
    dataset = TrainingSet([sample], cfg, "heatmap", soft_targets=[soft])
    plain = TrainingSet([sample], cfg, "heatmap")
    jittered = 0
    for epoch in range(30):
        dataset.set_epoch(epoch)
        plain.set_epoch(epoch)
        image, target, _ = dataset[0]
        plain_image, plain_target, _ = plain[0]
        assert target.shape == (2, 64, 64)
        assert torch.equal(target[:1], plain_target) and torch.allclose(image, plain_image, atol=1e-5)
        grey, teacher = image[0].numpy().ravel(), target[1].numpy().ravel()
        gain, offset = np.polyfit(teacher, grey, 1)  # grey = gain * teacher + offset, exactly
        assert np.allclose(grey, gain * teacher + offset, atol=1e-4)
        jittered += abs(gain - 1) > 0.05
    assert jittered > 10


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
