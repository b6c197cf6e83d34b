"""Points <-> centre-offset fields: where each pixel near a target says that target's centre is.

Why: on an extended target (a ship or an aircraft tens of pixels long) the heatmap peaks on
its hottest part, which can lie several pixels from the centre a user clicks, so the peak is
a miss and a false alarm at once. A heatmap is trained at a single pixel per target; an offset
field is trained at every pixel within `radius` of it (CenterNet's offset head, widened from
sub-pixel to `radius`), which is dense supervision of "how far is this object's centre".
encode: per pixel, the vector to the nearest point within `radius`, and a weight that says
which pixels are trained. decode: each heatmap peak moves by the offset read at its pixel,
then peaks that now land on one centre are merged (the highest score stays).
"""

from __future__ import annotations

import numpy as np


def encode_offsets(xy: np.ndarray, size: tuple[int, int], radius: float) -> np.ndarray:
    """The offset target of one image: (3, H, W) float32 = dx, dy (centre minus pixel, in pixels), weight.

    A pixel within `radius` of several points points at the nearest, so close targets each keep
    their own centre.
    """
    height, width = size
    field = np.zeros((3, height, width), dtype=np.float32)
    nearest = np.full((height, width), np.inf)
    reach = int(np.ceil(radius))
    for x, y in np.asarray(xy, dtype=np.float64).reshape(-1, 2):
        cx, cy = int(round(x)), int(round(y))
        x0, x1 = max(cx - reach, 0), min(cx + reach + 1, width)
        y0, y1 = max(cy - reach, 0), min(cy + reach + 1, height)
        if x0 >= x1 or y0 >= y1:
            continue
        dx = x - np.arange(x0, x1)[None, :]
        dy = y - np.arange(y0, y1)[:, None]
        distance = np.hypot(dx, dy)
        closer = (distance <= radius) & (distance < nearest[y0:y1, x0:x1])
        nearest[y0:y1, x0:x1][closer] = distance[closer]
        field[0, y0:y1, x0:x1][closer] = np.broadcast_to(dx, closer.shape)[closer]
        field[1, y0:y1, x0:x1][closer] = np.broadcast_to(dy, closer.shape)[closer]
        field[2, y0:y1, x0:x1][closer] = 1.0
    return field


def apply_offsets(offsets: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Move integer peak positions `xy` (N, 2) by the field `offsets` (2, H, W) read at their pixels."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    col, row = xy.astype(int).T
    return xy + offsets[:, row, col].T.astype(np.float64)


def merge_close(xy: np.ndarray, scores: np.ndarray, distance: float) -> np.ndarray:
    """Indices of the points to keep: each point closer than `distance` to a higher-scoring kept one goes.

    `scores` must be sorted from high to low (as decoded peaks are), so the kept indices stay sorted.
    """
    keep: list[int] = []
    for i in range(len(xy)):
        if not keep or np.min(np.hypot(*(xy[keep] - xy[i]).T)) >= distance:
            keep.append(i)
    return np.asarray(keep, dtype=np.intp)
