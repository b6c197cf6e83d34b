"""Geometric transforms applied to an image and its points together.

One pixel convention everywhere: the centre of pixel (row i, column j) is at (x=j, y=i).
So a point's position relative to the image's continuous extent is (x + 0.5) / W, and a resize
from W to W' maps x to (x + 0.5) * W' / W - 0.5 (OpenCV's resize samples the same way).
Every function here returns new arrays; points are (N, 2) float pixel coordinates (x, y).
"""

from __future__ import annotations

import cv2
import numpy as np


def map_resize(xy: np.ndarray, from_size: tuple[int, int], to_size: tuple[int, int]) -> np.ndarray:
    """Move pixel points from an image of `from_size` (H, W) to the same image resized to `to_size`."""
    scale = np.array([to_size[1] / from_size[1], to_size[0] / from_size[0]])
    return (np.asarray(xy, dtype=np.float64).reshape(-1, 2) + 0.5) * scale - 0.5


def resize(image: np.ndarray, xy: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Resize an image to `size` (H, W) and move its points with it."""
    height, width = size
    from_height, from_width = image.shape[:2]
    if height <= from_height and width <= from_width:
        out = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    elif height >= from_height and width >= from_width:
        out = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    else:
        # One axis shrinks, the other grows. OpenCV's INTER_AREA then falls back to a scheme that
        # shifts content by up to 0.1 px from the pixel-centre mapping, and INTER_LINEAR would alias
        # the shrinking axis; so shrink that axis by area first, then grow the other linearly.
        if height < from_height:
            out = cv2.resize(image, (from_width, height), interpolation=cv2.INTER_AREA)
        else:
            out = cv2.resize(image, (width, from_height), interpolation=cv2.INTER_AREA)
        out = cv2.resize(out, (width, height), interpolation=cv2.INTER_LINEAR)
    return out, map_resize(xy, image.shape[:2], size)


def hflip(image: np.ndarray, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right: column j goes to W - 1 - j."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2).copy()
    xy[:, 0] = image.shape[1] - 1 - xy[:, 0]
    return np.ascontiguousarray(image[:, ::-1]), xy


def vflip(image: np.ndarray, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror top-bottom: row i goes to H - 1 - i."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2).copy()
    xy[:, 1] = image.shape[0] - 1 - xy[:, 1]
    return np.ascontiguousarray(image[::-1]), xy


def rot90(image: np.ndarray, xy: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Rotate by k quarter turns counter-clockwise (as np.rot90): (x, y) -> (y, W - 1 - x) per turn."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2).copy()
    for _ in range(k % 4):
        width = image.shape[1]
        xy = np.stack([xy[:, 1], width - 1 - xy[:, 0]], axis=1)
        image = np.rot90(image)
    return np.ascontiguousarray(image), xy


def crop(image: np.ndarray, xy: np.ndarray, top: int, left: int, size: tuple[int, int],
         fill: float | np.ndarray = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Cut a (H, W) = `size` window whose top-left pixel is (top, left); outside the image is `fill`
    (one value, or one per channel of an (H, W, C) image).

    Points are shifted into the window's frame; points that fall outside it are dropped
    (a target on the window's edge, within half a pixel, is kept).
    """
    height, width = size
    out = np.full((height, width) + image.shape[2:], fill, dtype=image.dtype)
    src_top, src_left = max(top, 0), max(left, 0)
    src_bottom, src_right = min(top + height, image.shape[0]), min(left + width, image.shape[1])
    if src_bottom > src_top and src_right > src_left:
        out[src_top - top:src_bottom - top, src_left - left:src_right - left] = image[src_top:src_bottom, src_left:src_right]
    moved = np.asarray(xy, dtype=np.float64).reshape(-1, 2) - np.array([left, top], dtype=np.float64)
    inside = ((moved[:, 0] >= -0.5) & (moved[:, 0] < width - 0.5) & (moved[:, 1] >= -0.5) & (moved[:, 1] < height - 0.5))
    return out, moved[inside]


def pad_to_multiple(image: np.ndarray, multiple: int) -> np.ndarray:
    """Pad bottom and right with edge values so both sides are multiples of `multiple` (points unchanged)."""
    height, width = image.shape[:2]
    pad_h, pad_w = -height % multiple, -width % multiple
    # np.pad rather than cv2.copyMakeBorder: OpenCV drops a trailing channel axis of size 1.
    padding = [(0, pad_h), (0, pad_w)] + [(0, 0)] * (image.ndim - 2)
    return np.pad(image, padding, mode="edge")


SPREAD_FLOOR = 0.02  # of the image's range: the least spread standardize divides by (see there)


def standardize(image: np.ndarray) -> np.ndarray:
    """Zero mean, unit spread per image, so 8-bit, 16-bit, dark and bright sensors look alike to the net.

    The spread is taken as at least SPREAD_FLOOR of the image's range (max - min). Why: on a
    noise-free flat background the standard deviation comes from the targets alone and falls as the
    image grows, so a target ends up thousands of spreads tall, far past anything in training (a
    flat 3000 x 3000 frame with 4 targets gave 11 points, rings around each). With the floor a
    target stands at most 50 spreads above the mean, and the shipped model finds the 4 targets of
    such frames from 512 x 512 to 8192 x 8192. Real frames are barely touched: their spread is at
    least 1.1% of their range (NUAA-SIRST), 2.4% MDvsFA, 7% HIT-UAV, 11% drone-ir; on NUAA-SIRST's
    50/50 test split it changes the points of 8 of 214 images and F1 not at all (0.9344;
    docs/research-log.md).
    A constant image is left at zero. Statistics in float64.
    """
    values = image.astype(np.float64)
    mean, std = float(values.mean()), float(values.std())
    spread = max(std, SPREAD_FLOOR * float(values.max() - values.min()))
    return ((values - mean) / spread if spread > 0 else values - mean).astype(np.float32)
