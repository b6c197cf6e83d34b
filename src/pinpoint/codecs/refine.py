"""Sub-pixel peak positions: one Newton step on the log of the heatmap (DARK, Zhang et al., CVPR 2020).

Near a gaussian peak, log h(p) is a quadratic in p whose maximum is the true centre, so
offset = -H^-1 g with the gradient g and Hessian H of log h taken by central differences
at the integer arg-max. A light blur first makes a network's slightly ragged output closer to
gaussian. For a noise-free gaussian this recovers the centre to ~0.01 px; plain arg-max is off by
up to 0.5 px.
"""

from __future__ import annotations

import cv2
import numpy as np


def refine_peaks(heatmap: np.ndarray, xy: np.ndarray, blur_sigma: float = 1.0, max_shift: float = 1.0) -> np.ndarray:
    """Move integer peaks `xy` (N, 2) of `heatmap` (H, W) to sub-pixel positions.

    Peaks on the border (no neighbour on one side) move only along the axis that has both
    neighbours; peaks closer to the border than the blur's reach are refined without blur.
    A step is discarded where the Hessian is not negative definite (not a maximum).
    """
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    return refine_peaks_batch(np.asarray(heatmap)[None], np.zeros(len(xy), dtype=np.intp), xy, blur_sigma, max_shift)


def refine_peaks_batch(heatmaps: np.ndarray, image_index: np.ndarray, xy: np.ndarray, blur_sigma: float = 1.0,
                       max_shift: float = 1.0) -> np.ndarray:
    """refine_peaks for the peaks of a whole batch at once: peak n lies in `heatmaps[image_index[n]]`.

    The Newton step is array arithmetic over every peak together, and only the 3x3
    neighbourhood of each peak is taken to the log, so the cost is one blur per image
    that has a peak far enough from the border, not a Python loop per peak.
    """
    heatmaps = np.asarray(heatmaps)
    image_index = np.asarray(image_index, dtype=np.intp).reshape(-1)
    out = np.asarray(xy, dtype=np.float64).reshape(-1, 2).copy()
    if not len(out):
        return out
    _, height, width = heatmaps.shape
    col, row = out.astype(int).T
    radius = max(int(np.ceil(4 * blur_sigma)), 1) if blur_sigma > 0 else 0
    # The blur reads `radius` pixels around the peak and its neighbours; any of them past the
    # border is a reflected copy, which drags the peak (0.1 px at 2 px from the edge). There
    # the unblurred map is used: exact for a clean gaussian, a little noisier for a ragged one.
    margin = radius + 1 if blur_sigma > 0 else 0
    blur_fits = (margin <= col) & (col < width - margin) & (margin <= row) & (row < height - margin)
    has_x = (0 < col) & (col < width - 1)
    has_y = (0 < row) & (row < height - 1)
    # Neighbour indices fall back on the peak itself along an axis without both neighbours;
    # those values are never used, the fallback only keeps every index inside the map.
    rows = np.stack([np.where(has_y, row - 1, row), row, np.where(has_y, row + 1, row)], axis=1)[:, :, None]
    cols = np.stack([np.where(has_x, col - 1, col), col, np.where(has_x, col + 1, col)], axis=1)[:, None, :]
    window = heatmaps[image_index[:, None, None], rows, cols].astype(np.float64)  # (N, 3, 3): [dy + 1, dx + 1]
    if blur_sigma > 0 and blur_fits.any():
        for b in np.unique(image_index[blur_fits]):
            blurred = cv2.GaussianBlur(np.asarray(heatmaps[b], dtype=np.float64), (2 * radius + 1, 2 * radius + 1), blur_sigma)
            chosen = blur_fits & (image_index == b)
            window[chosen] = blurred[rows[chosen], cols[chosen]]
    logh = np.log(np.maximum(window, 1e-10))
    c = logh[:, 1, 1]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        dx = np.where(has_x, (logh[:, 1, 2] - logh[:, 1, 0]) / 2, 0.0)
        dy = np.where(has_y, (logh[:, 2, 1] - logh[:, 0, 1]) / 2, 0.0)
        dxx = np.where(has_x, logh[:, 1, 2] - 2 * c + logh[:, 1, 0], -1.0)
        dyy = np.where(has_y, logh[:, 2, 1] - 2 * c + logh[:, 0, 1], -1.0)
        dxy = np.where(has_x & has_y, (logh[:, 2, 2] - logh[:, 2, 0] - logh[:, 0, 2] + logh[:, 0, 0]) / 4, 0.0)
        det = dxx * dyy - dxy * dxy
        step_x = -(dyy * dx - dxy * dy) / det
        step_y = -(dxx * dy - dxy * dx) / det
    # Written as "not (not a maximum)" so that a NaN curvature moves the peak exactly as before.
    maximum = ~((dxx >= 0) | (det <= 0))
    out[maximum, 0] += np.clip(step_x[maximum], -max_shift, max_shift)
    out[maximum, 1] += np.clip(step_y[maximum], -max_shift, max_shift)
    return out
