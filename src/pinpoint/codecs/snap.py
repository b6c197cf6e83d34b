"""Points -> points on the centres of the bright blobs they sit on (an optional last decoding step).

Why: a heatmap peaks where a target looks most like its training targets, which on an extended
target (a ship or an aircraft tens of pixels long) is its hottest part, several pixels from the
centre a user clicks; and on a small one it lands within about half a pixel of it. The image
itself says where the blob is: the intensity centroid of the blob around the peak, segmented at
half its height above the local background, is the centre of mass that a centroid label (one
click "on the centre", or the centroid of a mask) describes. A point moves only when its blob is
bright and compact: brighter than the window's median, and not reaching the window's edge inside
the image (a blob that fills the window is cloud or sky, not a target); otherwise it stays where
the network put it. Points that are one target are merged (see snap_and_merge).
"""

from __future__ import annotations

import cv2
import numpy as np

# half-width of the window around each point, px: a blob fits if it spans up to 31 px with the peak in
# its middle, or up to 16 px with the peak at one end; a larger blob leaves its point where it was
SNAP_RADIUS = 15
SNAP_LEVEL = 0.5  # blob = pixels above background + LEVEL * (peak - background): half maximum
# a peak merges with a target through their blobs only if it scores at least this share of the target's highest
COMPARABLE_SCORE = 0.5


def find_blob(grey: np.ndarray, x: float, y: float, radius: int = SNAP_RADIUS,
              level: float = SNAP_LEVEL) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The bright blob at (x, y) as (columns, rows, brightness above the local background) of its
    pixels in `grey` (float64), or None where there is none that fits (see module doc)."""
    height, width = grey.shape
    col, row = min(max(int(round(x)), 0), width - 1), min(max(int(round(y)), 0), height - 1)
    x0, y0 = max(col - radius, 0), max(row - radius, 0)
    window = grey[y0:row + radius + 1, x0:col + radius + 1]
    background = float(np.median(window))
    # the blob's own maximum: the brightest pixel of the 3x3 around the point
    r, c = row - y0, col - x0
    near = window[max(r - 1, 0):r + 2, max(c - 1, 0):c + 2]
    dy, dx = np.unravel_index(np.argmax(near), near.shape)
    peak_r, peak_c = max(r - 1, 0) + dy, max(c - 1, 0) + dx
    peak = window[peak_r, peak_c]
    if peak <= background:
        return None
    above = (window >= background + level * (peak - background)).astype(np.uint8)
    _, components = cv2.connectedComponents(above, connectivity=8)
    blob = components == components[peak_r, peak_c]
    # a blob reaching a side of the window that lies inside the image does not fit in it;
    # one cut by the image's own border is a target at the edge of the frame
    bottom, right = y0 + window.shape[0] < height, x0 + window.shape[1] < width
    if (y0 and blob[0].any()) or (bottom and blob[-1].any()) or (x0 and blob[:, 0].any()) or (right and blob[:, -1].any()):
        return None
    rows, cols = np.nonzero(blob)
    return x0 + cols, y0 + rows, window[rows, cols] - background


def _snap(grey: np.ndarray, points: np.ndarray, radius: int = SNAP_RADIUS,
          level: float = SNAP_LEVEL) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray, np.ndarray] | None]]:
    """(each point of `points` (N, 2) moved to its blob's intensity centroid, each point's blob or None)."""
    blobs = [find_blob(grey, x, y, radius, level) for x, y in points]
    snapped = points.copy()
    for k, blob in enumerate(blobs):
        if blob is not None:
            cols, rows, weight = blob
            snapped[k] = ((cols * weight).sum() / weight.sum(), (rows * weight).sum() / weight.sum())
    return snapped, blobs


def snap_to_blobs(grey: np.ndarray, xy: np.ndarray, radius: int = SNAP_RADIUS, level: float = SNAP_LEVEL) -> np.ndarray:
    """Move each point of `xy` (N, 2, pixels of `grey`) to the intensity centroid of its blob (see module doc)."""
    return _snap(np.asarray(grey, dtype=np.float64), np.asarray(xy, dtype=np.float64).reshape(-1, 2), radius, level)[0]


def blob_radii(grey: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Each point's blob size as the radius of a disc of its area, px (N,); 0 where no blob fits."""
    grey = np.asarray(grey, dtype=np.float64)
    points = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    radii = np.zeros(len(points))
    for k, (x, y) in enumerate(points):
        blob = find_blob(grey, x, y)
        if blob is not None:
            radii[k] = np.sqrt(len(blob[0]) / np.pi)
    return radii


def snap_and_merge(grey: np.ndarray, xy: np.ndarray, scores: np.ndarray, distance: float) -> tuple[np.ndarray, np.ndarray]:
    """The whole step: snap `xy` onto their blobs in `grey`, then merge the points that are one target.

    A point joins a target when it snaps within `distance` of the target's highest-scoring point
    (as in NMS), or when it scores at least half as high and sits in the blob of one of the
    target's points, or one of them in its: the network can peak on two hot spots of a ship, and
    the lower peak's blob, cut at a lower level, takes in the whole hull. A target keeps the highest
    score of its points and the centroid of the largest blob among its points that score at least
    half as high: the whole target's centre rather than one hot spot's. A much weaker peak never
    places a target, nor joins one through blobs: its blob, cut at half of a faint bump's height,
    can spread over a real target's surroundings.
    `scores` must be sorted from high to low (as decoded peaks are); the result stays sorted.
    """
    if not len(xy):
        return xy, scores
    grey = np.asarray(grey, dtype=np.float64)
    width = grey.shape[1]
    points = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    scores = np.asarray(scores)
    snapped, blobs = _snap(grey, points)
    # a validation pass merges ~100 low-scoring peaks per image: blobs as sets of flat pixel
    # indices, and each point tested against the few targets it could join
    rounded = np.clip(np.rint(points).astype(np.int64), 0, [width - 1, grey.shape[0] - 1])
    pixels = (rounded[:, 1] * width + rounded[:, 0]).tolist()
    members_of = [set() if blob is None else set((blob[1] * width + blob[0]).tolist()) for blob in blobs]
    score = scores.tolist()

    def one_blob(i: int, j: int) -> bool:  # either point sits in the other's blob
        return pixels[i] in members_of[j] or pixels[j] in members_of[i]

    targets: list[list[int]] = []  # each target's points, its highest-scoring one first
    target_of = np.empty(len(points), dtype=np.intp)
    leads = np.empty((len(points), 2))  # the snapped position of each target's first point
    lead_scores = np.empty(len(points))
    for i in range(len(points)):
        count = len(targets)
        near = np.flatnonzero(np.hypot(*(leads[:count] - snapped[i]).T) < distance)
        first_near = int(near[0]) if len(near) else count
        # targets whose highest score this one reaches a COMPARABLE_SCORE share of: a tail of the list (scores fall)
        comparable = int(np.searchsorted(-lead_scores[:count], -score[i] / COMPARABLE_SCORE))
        # blobs fit in a window of SNAP_RADIUS around their point: only points that close can share one
        close = np.flatnonzero(np.abs(rounded[:i] - rounded[i]).max(axis=1) <= SNAP_RADIUS)
        shared = [int(target_of[j]) for j in close if one_blob(i, j)]
        joined = min([t for t in shared if comparable <= t < first_near], default=first_near)
        if joined == count:
            leads[count], lead_scores[count] = snapped[i], score[i]
            targets.append([])
        targets[joined].append(i)
        target_of[i] = joined
    # ties (no blob at all, say) go to the highest-scoring point
    where = [max((k for k in members if score[k] >= COMPARABLE_SCORE * score[members[0]]), key=lambda k: len(members_of[k]))
             for members in targets]
    return snapped[where], scores[[members[0] for members in targets]]
