"""Points -> tracks: follow detected points from frame to frame, and drop what only one frame sees.

Each track is a constant-velocity Kalman filter on (x, y) (filterpy). Each frame, every track
predicts where its target is now, and the frame's points are assigned to the predictions one to
one, at the least total distance (scipy's Hungarian solver), a pair farther apart than `gate_px`
being no pair at all. A point no track takes starts a tentative track.

A tentative track is confirmed once it has been seen in `confirm_hits` of its last
`confirm_window` frames; a track not seen for more than `max_missed` frames ends. Only
confirmed tracks are reported: a flicker of clutter that lives for one frame never is, while a
target's short gap is bridged by its predicted position, flagged as predicted.

Confirmation needs a few frames, so a frame's tracked points are final only `confirm_window - 1`
frames later: `update` returns the frame that many frames back (and `flush` the rest at the end),
with every point of a track confirmed since, its first frames included. Streaming and whole-file
tracking give the same result.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
from filterpy.common import Q_discrete_white_noise
from filterpy.kalman import KalmanFilter
from scipy.optimize import linear_sum_assignment

from pinpoint.points import Points


@dataclass(frozen=True)
class TrackerSettings:
    """How points become tracks. The defaults are first guesses for 30 fps video of targets moving a
    few pixels a frame, not yet tuned on real video."""

    gate_px: float = 10.0  # a point farther than this from a track's predicted position is not its target
    confirm_hits: int = 3  # a track is reported once seen in this many ...
    confirm_window: int = 5  # ... of its last this many frames
    max_missed: int = 5  # frames a confirmed track is carried on its prediction before it ends
    acceleration: float = 0.5  # px / frame^2: how much a target's velocity may change from frame to frame
    position_noise: float = 1.0  # px: how far a detected point may lie from the target's true centre

    def __post_init__(self) -> None:
        if not (self.gate_px > 0 and self.acceleration > 0 and self.position_noise > 0):
            raise ValueError("gate_px, acceleration and position_noise must be > 0")
        if not 1 <= self.confirm_hits <= self.confirm_window or self.max_missed < 0:
            raise ValueError("need 1 <= confirm_hits <= confirm_window and max_missed >= 0")


@dataclass(frozen=True)
class TrackedPoint:
    """One track's point in one frame: detected (`predicted` False, `score` the detection's) or
    carried over a gap on the track's prediction (`predicted` True, `score` its last detection's)."""

    track: int
    x: float
    y: float
    score: float
    predicted: bool


@dataclass
class _Track:
    number: int
    kf: KalmanFilter
    seen: deque = field(default_factory=deque)  # hit (True) or miss of each recent frame
    missed: int = 0
    score: float = 0.0
    last_xy: np.ndarray | None = None
    confirmed: bool = False
    points: dict[int, TrackedPoint] = field(default_factory=dict)  # frame -> point, kept until the frame is final


class PointTracker:
    """Feed it each frame's points in order (`update`); it hands back finished frames' tracked points."""

    def __init__(self, settings: TrackerSettings | None = None) -> None:
        self.settings = settings or TrackerSettings()
        self.frame = -1
        self.next_number = 1
        self.tracks: list[_Track] = []
        self.ended: list[_Track] = []  # ended tracks whose points are not final yet

    @property
    def lag(self) -> int:
        """How many frames behind the input the returned frame is."""
        return self.settings.confirm_window - 1

    def update(self, points: Points) -> tuple[int, list[TrackedPoint]] | None:
        """Take the next frame's points; return (frame, its tracked points) for the frame `lag`
        frames back, or None while the first frames are not final."""
        self.frame += 1
        s = self.settings
        for track in self.tracks:
            track.kf.predict()
        xy, score = np.asarray(points.xy, np.float64).reshape(-1, 2), np.asarray(points.score, np.float64)
        pairs = self._assign(xy)
        taken = set()
        for t, d in pairs:
            track = self.tracks[t]
            track.kf.update(xy[d])
            track.seen.append(True)
            track.missed, track.score, track.last_xy = 0, float(score[d]), xy[d]
            taken.add(d)
        matched = {t for t, _ in pairs}
        for t, track in enumerate(self.tracks):
            if t not in matched:
                track.seen.append(False)
                track.missed += 1
        for d in range(len(xy)):
            if d not in taken:
                self.tracks.append(self._start(xy[d], float(score[d])))
        for track in self.tracks:
            while len(track.seen) > s.confirm_window:
                track.seen.popleft()
            if not track.confirmed and sum(track.seen) >= s.confirm_hits:
                track.confirmed = True
            if track.seen[-1]:  # the detected point itself: the detector places it to a fraction of a pixel
                x, y = track.last_xy
                track.points[self.frame] = TrackedPoint(track.number, float(x), float(y), track.score, False)
            elif track.confirmed and track.missed <= s.max_missed:
                x, y = track.kf.x[0, 0], track.kf.x[1, 0]
                track.points[self.frame] = TrackedPoint(track.number, float(x), float(y), track.score, True)
        alive = []
        for track in self.tracks:
            ends = track.missed > s.max_missed if track.confirmed else len(track.seen) >= s.confirm_window
            (self.ended if ends else alive).append(track)
        self.tracks = alive
        return self._finish(self.frame - self.lag) if self.frame >= self.lag else None

    def flush(self) -> list[tuple[int, list[TrackedPoint]]]:
        """The frames not yet returned, once the input has ended."""
        return [self._finish(frame) for frame in range(max(self.frame - self.lag + 1, 0), self.frame + 1)]

    def _assign(self, xy: np.ndarray) -> list[tuple[int, int]]:
        if not self.tracks or not len(xy):
            return []
        predicted = np.array([[t.kf.x[0, 0], t.kf.x[1, 0]] for t in self.tracks])
        cost = np.hypot(predicted[:, None, 0] - xy[None, :, 0], predicted[:, None, 1] - xy[None, :, 1])
        # confirmed tracks first: a new tentative track must not take a confirmed one's point
        tentative = np.array([0.0 if t.confirmed else self.settings.gate_px for t in self.tracks])
        rows, cols = linear_sum_assignment(np.where(cost <= self.settings.gate_px, cost + tentative[:, None], 1e9))
        return [(int(r), int(c)) for r, c in zip(rows, cols) if cost[r, c] <= self.settings.gate_px]

    def _start(self, xy: np.ndarray, score: float) -> _Track:
        s = self.settings
        kf = KalmanFilter(dim_x=4, dim_z=2)  # state (x, y, vx, vy), measured (x, y)
        kf.F = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=np.float64)
        kf.H = np.array([[1, 0, 0, 0], [0, 1, 0, 0]], dtype=np.float64)
        kf.x = np.array([[xy[0]], [xy[1]], [0.0], [0.0]])
        # the first point's place is known to the detector's accuracy, its velocity up to a gate a frame
        kf.P = np.diag([s.position_noise ** 2] * 2 + [(s.gate_px / 2) ** 2] * 2)
        kf.R = np.eye(2) * s.position_noise ** 2
        kf.Q = Q_discrete_white_noise(dim=2, dt=1.0, var=s.acceleration ** 2, block_size=2, order_by_dim=False)
        track = _Track(self.next_number, kf, deque([True]), score=score, last_xy=xy)
        self.next_number += 1
        return track

    def _finish(self, frame: int) -> tuple[int, list[TrackedPoint]]:
        """The final points of `frame`: those of the tracks confirmed by now."""
        out = []
        for track in (*self.tracks, *self.ended):
            point = track.points.pop(frame, None)
            if point is not None and track.confirmed:
                out.append(point)
        self.ended = [t for t in self.ended if t.points]
        return frame, sorted(out, key=lambda p: p.track)


def track_points(frames: list[Points], settings: TrackerSettings | None = None) -> list[list[TrackedPoint]]:
    """Every frame's tracked points, for a whole sequence of per-frame points at once."""
    tracker = PointTracker(settings)
    out = [result for points in frames if (result := tracker.update(points)) is not None] + tracker.flush()
    assert [frame for frame, _ in out] == list(range(len(frames)))
    return [points for _, points in out]
