"""The pixel convention through every transform: points go there and back exactly, and follow the image content."""

from __future__ import annotations

import numpy as np
import pytest

from pinpoint.codecs.heatmap import encode
from pinpoint.data import transforms as T

SIZE = (37, 52)  # (H, W): non-square, odd and even, so a swapped axis shows up
POINTS = np.array([[10.3, 7.8], [40.71, 25.05], [0.0, 36.0], [51.0, 0.0], [25.5, 18.5]])


def _centroid(image: np.ndarray) -> np.ndarray:
    rows, cols = np.mgrid[: image.shape[0], : image.shape[1]]
    total = image.sum()
    return np.array([(image * cols).sum() / total, (image * rows).sum() / total])


def _spot(xy: tuple[float, float], size: tuple[int, int], sigma: float) -> np.ndarray:
    return encode(np.array([xy]), size, sigma).astype(np.float64)


# ---------------------------------------------------------------- exact mappings


def test_resize_mapping_follows_pixel_centres() -> None:
    # Doubling: pixel 0 covers [-0.5, 0.5), its centre lands between new pixels 0 and 1, at 0.5.
    np.testing.assert_allclose(T.map_resize([[0.0, 0.0]], (4, 4), (8, 8)), [[0.5, 0.5]])
    # The image's outer edge (-0.5) stays the outer edge.
    np.testing.assert_allclose(T.map_resize([[-0.5, 3.5]], (4, 10), (12, 5)), [[-0.5, 11.5]])
    # x follows the width ratio and y the height ratio.
    np.testing.assert_allclose(T.map_resize([[1.5, 1.5]], (10, 20), (30, 10)), [[0.5, 5.5]])


def test_flip_and_rotate_exact_values() -> None:
    image = np.zeros(SIZE)
    xy = np.array([[2.25, 5.5]])
    assert T.hflip(image, xy)[1].tolist() == [[SIZE[1] - 1 - 2.25, 5.5]]
    assert T.vflip(image, xy)[1].tolist() == [[2.25, SIZE[0] - 1 - 5.5]]
    rotated, moved = T.rot90(image, xy, 1)
    assert rotated.shape == (SIZE[1], SIZE[0])
    assert moved.tolist() == [[5.5, SIZE[1] - 1 - 2.25]]


@pytest.mark.parametrize("k", [1, 2, 3])
def test_rot90_moves_a_marked_pixel_like_numpy(k: int) -> None:
    image = np.zeros(SIZE)
    image[7, 10] = 1.0  # row 7, column 10: the point (x=10, y=7)
    rotated, moved = T.rot90(image, np.array([[10.0, 7.0]]), k)
    np.testing.assert_array_equal(rotated, np.rot90(image, k))
    row, col = np.argwhere(rotated == 1.0)[0]
    assert moved.tolist() == [[col, row]]


def test_crop_shifts_points_and_drops_those_outside() -> None:
    image = np.arange(20 * 30, dtype=np.float32).reshape(20, 30)
    xy = np.array([[5.0, 4.0], [2.0, 2.0], [14.4, 10.4], [14.6, 10.0]])
    out, moved = T.crop(image, xy, top=3, left=4, size=(8, 11))
    assert out.shape == (8, 11)
    np.testing.assert_array_equal(out, image[3:11, 4:15])
    # (2, 2) is left of the window; (14.6, 10) is past its right edge at x = 10.5 in window frame
    np.testing.assert_allclose(moved, [[1.0, 1.0], [10.4, 7.4]])


def test_crop_window_partly_outside_is_filled() -> None:
    image = np.ones((6, 6), np.float32)
    out, _ = T.crop(image, np.zeros((0, 2)), top=-2, left=3, size=(5, 5), fill=-1.0)
    assert out.shape == (5, 5)
    assert np.all(out[:2] == -1.0)  # above the image
    assert np.all(out[:, 3:] == -1.0)  # right of the image
    assert np.all(out[2:, :3] == 1.0)


# ---------------------------------------------------------------- there and back


@pytest.mark.parametrize("size", [(74, 104), (18, 26), (50, 20), (12, 90), (37, 52)])
def test_resize_and_back(size: tuple[int, int]) -> None:
    image = np.zeros(SIZE, np.float32)
    resized, there = T.resize(image, POINTS, size)
    assert resized.shape == size
    _, back = T.resize(resized, there, SIZE)
    np.testing.assert_allclose(back, POINTS, atol=1e-9, rtol=0)


def test_flips_and_back() -> None:
    image = np.zeros(SIZE)
    for flip in (T.hflip, T.vflip):
        flipped, there = flip(image, POINTS)
        assert not np.allclose(there, POINTS)
        _, back = flip(flipped, there)
        np.testing.assert_allclose(back, POINTS, atol=1e-9, rtol=0)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_rot90_and_back(k: int) -> None:
    image = np.zeros(SIZE)
    rotated, there = T.rot90(image, POINTS, k)
    _, back = T.rot90(rotated, there, 4 - k)
    np.testing.assert_allclose(back, POINTS, atol=1e-9, rtol=0)
    _, back = T.rot90(rotated, there, -k)
    np.testing.assert_allclose(back, POINTS, atol=1e-9, rtol=0)


def test_crop_partly_outside_and_back() -> None:
    image = np.zeros(SIZE)
    top, left = -6, 20  # rows -6..33 and columns 20..59: above the top and past the right edge (W = 52)
    _, there = T.crop(image, POINTS, top, left, (40, 40))
    kept = POINTS[POINTS[:, 0] >= left - 0.5]
    assert len(there) == len(kept) == 3
    np.testing.assert_allclose(there + np.array([left, top]), kept, atol=1e-9, rtol=0)


# ---------------------------------------------------------------- points follow the image content


POINT = (20.37, 14.62)


@pytest.mark.parametrize("size", [(74, 104), (18, 26), (60, 30), (20, 90)])
def test_resize_moves_content_with_points(size: tuple[int, int]) -> None:
    image = _spot(POINT, SIZE, sigma=3.0)
    out, moved = T.resize(image, np.array([POINT]), size)
    np.testing.assert_allclose(_centroid(out), moved[0], atol=0.05)


@pytest.mark.parametrize("name, transform", [
    ("hflip", T.hflip),
    ("vflip", T.vflip),
    ("rot90 k=1", lambda im, xy: T.rot90(im, xy, 1)),
    ("rot90 k=2", lambda im, xy: T.rot90(im, xy, 2)),
    ("rot90 k=3", lambda im, xy: T.rot90(im, xy, 3)),
    ("crop inside", lambda im, xy: T.crop(im, xy, 5, 8, (25, 30))),
    ("crop partly outside", lambda im, xy: T.crop(im, xy, -7, -4, (30, 35))),
])
def test_geometric_transforms_move_content_with_points(name: str, transform) -> None:
    image = _spot(POINT, SIZE, sigma=1.5)
    out, moved = transform(image, np.array([POINT]))
    assert len(moved) == 1, name
    np.testing.assert_allclose(_centroid(out), moved[0], atol=0.05, err_msg=name)


# ---------------------------------------------------------------- padding and standardising


@pytest.mark.parametrize("shape, multiple, expected", [
    ((5, 7), 4, (8, 8)),
    ((8, 16), 8, (8, 16)),
    ((33, 1), 32, (64, 32)),
    ((5, 7, 3), 4, (8, 8, 3)),
    ((5, 7, 1), 4, (8, 8, 1)),
])
def test_pad_to_multiple_shapes(shape: tuple, multiple: int, expected: tuple) -> None:
    image = np.random.default_rng(1).random(shape).astype(np.float32)
    padded = T.pad_to_multiple(image, multiple)
    assert padded.shape == expected
    assert padded.dtype == image.dtype
    np.testing.assert_array_equal(padded[: shape[0], : shape[1]], image)


def test_pad_to_multiple_replicates_the_edge() -> None:
    image = np.arange(6, dtype=np.float32).reshape(2, 3)
    padded = T.pad_to_multiple(image, 4)
    np.testing.assert_array_equal(padded, [[0, 1, 2, 2], [3, 4, 5, 5], [3, 4, 5, 5], [3, 4, 5, 5]])


def test_pad_to_multiple_returns_a_new_array() -> None:
    image = np.zeros((8, 8), np.float32)
    padded = T.pad_to_multiple(image, 4)
    padded[0, 0] = 1.0
    assert image[0, 0] == 0.0


def test_standardize_gives_zero_mean_unit_std() -> None:
    image = np.random.default_rng(2).random((40, 50)).astype(np.float32) * 0.3 + 0.6
    out = T.standardize(image)
    assert out.dtype == np.float32
    assert abs(float(out.mean())) < 1e-5
    assert float(out.std()) == pytest.approx(1.0, abs=1e-5)
    # order is kept: standardising is an increasing affine map
    assert np.argmax(out) == np.argmax(image)


def test_standardize_low_contrast_16bit_frame() -> None:
    # A 16-bit sensor that spans 20 grey levels: std ~ 1e-4 after dividing by 65535.
    counts = np.random.default_rng(3).integers(30000, 30020, size=(30, 30))
    out = T.standardize((counts / 65535.0).astype(np.float32))
    assert float(out.std()) == pytest.approx(1.0, abs=1e-3)


def test_standardize_survives_a_constant_image() -> None:
    out = T.standardize(np.full((8, 9), 0.7, np.float32))
    assert out.shape == (8, 9)
    assert np.all(np.isfinite(out))
    assert np.all(out == 0.0)


def test_standardize_integer_input() -> None:
    out = T.standardize(np.array([[0, 255], [0, 255]], np.uint8))
    np.testing.assert_allclose(out, [[-1, 1], [-1, 1]], atol=1e-6)
