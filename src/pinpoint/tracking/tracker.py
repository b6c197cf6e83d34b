"""Points -> tracks: follow detected points from frame to frame, and keep what their tracks confirm.

Each track is a constant-velocity Kalman filter on (x, y) (filterpy). Each frame, every track
predicts where its target is now, and the frame's points are assigned to the predictions one to
one, at the least total distance (scipy's Hungarian solver), a pair farther apart than `gate_px`
being no pair at all: first the points at or above the detector's threshold, then the fainter
candidates to the tracks still unmatched, so a faint point never takes a confident one's place.
A point no track takes starts a tentative track.

What is reported is decided per track, on evidence gathered across frames:
- A tentative track is confirmed once its evidence over its last `confirm_window` frames
  reaches `confirm_hits`: a point scoring at least the detector's threshold counts 1, a fainter
  candidate (down to `candidates` x threshold) its score over the threshold, a miss 0. A flicker
  of clutter that lives for one frame is never reported.
- A confirmed track is reported while the mean score of its points (to the frame being
  finished) reaches `track_score` x threshold. Clutter that lasts (a warm roof edge, a glint
  that stays) scores near the threshold frame after frame, and a single-frame threshold lets
  it through whenever it peaks; a target scores well above it on average, so its frames that
  dip below the threshold are kept (from the fainter candidates) while the clutter's are not.
- A track not seen for more than `max_missed` frames ends. A gap that closes (the track is
  seen again) is bridged on the straight line between its two ends, flagged as predicted; a
  track that is never seen again is not carried past its last point.

Confirmation and gaps need a few frames, so a frame's tracked points are final only `lag` frames
later (the larger of `confirm_window - 1` and `max_missed`): `update` returns the frame that many
frames back (and `flush` the rest at the end), with every point of a track confirmed since, its
first frames included. Streaming and whole-file tracking give the same result.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from filterpy.common import Q_discrete_white_noise
from filterpy.kalman import KalmanFilter
from scipy.optimize import linear_sum_assignment

from pinpoint.points import Points


# Limits of the settings, so that the arithmetic stays finite and the memory bounded: a gate's
# square enters the filter's covariance (1e308 px would overflow), and every frame waits `lag`
# frames, its image held, before it is final (300 frames of 1280x1024 hold 1.5 GB).
MAX_DISTANCE_PX = 10_000.0  # larger than any frame: a gate past it gates nothing
MAX_FRAMES = 300  # frames of a confirmation window or of a gap: 10 s at 30 frames/s
MAX_TRACK_SCORE = 100.0  # x the threshold; scores are at most 1, so anything past 1 / threshold reports nothing


@dataclass(frozen=True)
class TrackerSettings:
    """How points become tracks. Defaults chosen on held-out drone-ir training videos (30 fps,
    320x256; benchmarks/tracking.py and the research log)."""

    gate_px: float = 10.0  # a point farther than this from a track's predicted position is not its target
    confirm_hits: float = 5.0  # a track is reported once its evidence reaches this over ...
    confirm_window: int = 8  # ... its last this many frames (a point at or above the threshold is 1, a fainter one less)
    max_missed: int = 2  # frames a track may go unseen and still continue; its gap is then bridged
    candidates: float = 0.7  # points down to this fraction of the threshold may continue or start a track (1: none fainter)
    track_score: float = 1.1  # a track is reported while the mean score of its points reaches this x the threshold
    acceleration: float = 1.0  # px / frame^2: how much a target's velocity may change from frame to frame
    position_noise: float = 1.0  # px: how far a detected point may lie from the target's true centre

    def __post_init__(self) -> None:
        for name in ("gate_px", "acceleration", "position_noise"):
            if not 0 < getattr(self, name) <= MAX_DISTANCE_PX:  # NaN fails too
                raise ValueError(f"{name} = {getattr(self, name)!r}: must be > 0 and <= {MAX_DISTANCE_PX:g} px")
        if not (isinstance(self.confirm_window, int) and 0 < self.confirm_hits <= self.confirm_window <= MAX_FRAMES):
            raise ValueError(f"need 0 < confirm_hits <= confirm_window <= {MAX_FRAMES} (a whole number of frames)")
        if not (isinstance(self.max_missed, int) and 0 <= self.max_missed <= MAX_FRAMES):
            raise ValueError(f"max_missed = {self.max_missed!r}: must be a whole number of frames >= 0 and <= {MAX_FRAMES}")
        if not 0 < self.candidates <= 1:
            raise ValueError("candidates is a fraction of the threshold: 0 < candidates <= 1")
        if not 0 <= self.track_score <= MAX_TRACK_SCORE:
            raise ValueError(f"track_score is a multiple of the threshold: >= 0 and <= {MAX_TRACK_SCORE:g}")

    @property
    def lag(self) -> int:
        """Frames a tracked point waits before it is final: long enough to confirm a track from its
        first point, and to know whether a gap closes (only gaps that close are bridged)."""
        return max(self.confirm_window - 1, self.max_missed)


@dataclass(frozen=True)
class TrackedPoint:
    """One track's point in one frame: detected (`predicted` False, `score` the detection's) or
    bridging a gap between two detections of its track (`predicted` True, `score` the last one's)."""

    track: int
    x: float
    y: float
    score: float
    predicted: bool


@dataclass
class _Track:
    number: int
    kf: KalmanFilter
    last_frame: int  # the frame of its last detected point
    last_xy: np.ndarray
    score: float
    evidence: deque = field(default_factory=deque)  # each recent frame's: min(score / threshold, 1) when seen, 0 when not
    score_sum: float = 0.0  # of its detected points' scores, for their mean
    detected: int = 0
    confirmed: bool = False
    points: dict[int, TrackedPoint] = field(default_factory=dict)  # frame -> point, kept until the frame is final


class PointTracker:
    """Feed it each frame's points in order (`update`); it hands back finished frames' tracked points.

    `threshold` is the detector's score cut: a point scoring at least it is a full detection (one
    hit towards confirmation); a fainter candidate (from `candidates` x threshold) counts for its
    share. Without a threshold (or with 0) every point given is a full detection."""

    def __init__(self, settings: TrackerSettings | None = None, threshold: float | None = None) -> None:
        self.settings = settings or TrackerSettings()
        self.threshold = threshold if threshold is not None and threshold > 0 else None  # a zero cut: every point is full
        self.frame = -1
        self.next_number = 1
        self.tracks: list[_Track] = []
        self.ended: list[_Track] = []  # ended tracks whose points are not final yet

    @property
    def lag(self) -> int:
        """How many frames behind the input the returned frame is."""
        return self.settings.lag

    def update(self, points: Points) -> tuple[int, list[TrackedPoint]] | None:
        """Take the next frame's points; return (frame, its tracked points) for the frame `lag`
        frames back, or None while the first frames are not final."""
        self.frame += 1
        s = self.settings
        xy, score = np.asarray(points.xy, np.float64).reshape(-1, 2), np.asarray(points.score, np.float64)
        cut = -np.inf if self.threshold is None else self.threshold
        keep = score >= s.candidates * cut
        xy, score = xy[keep], score[keep]
        for track in self.tracks:
            track.kf.predict()
        # points at the threshold first; then the fainter candidates, only to the tracks still unseen,
        # so that a faint point near a track never takes the place of a confident one
        strong = np.flatnonzero(score >= cut)
        faint = np.flatnonzero(score < cut)
        pairs = [(t, strong[d]) for t, d in self._assign(range(len(self.tracks)), xy[strong])]
        unseen = sorted(set(range(len(self.tracks))) - {t for t, _ in pairs})
        pairs += [(unseen[t], faint[d]) for t, d in self._assign(unseen, xy[faint])]
        for t, d in pairs:
            self._continue(self.tracks[t], xy[d], float(score[d]))
        matched = {t for t, _ in pairs}
        for t, track in enumerate(self.tracks):
            if t not in matched:
                track.evidence.append(0.0)
        taken = {d for _, d in pairs}
        self.tracks += [self._start(xy[d], float(score[d])) for d in range(len(xy)) if d not in taken]
        alive = []
        for track in self.tracks:
            while len(track.evidence) > s.confirm_window:
                track.evidence.popleft()
            if not track.confirmed and sum(track.evidence) >= s.confirm_hits - 1e-9:
                track.confirmed = True
            missed = self.frame - track.last_frame
            ends = missed > s.max_missed or (not track.confirmed and len(track.evidence) >= s.confirm_window)
            (self.ended if ends else alive).append(track)
        self.tracks = alive
        return self._finish(self.frame - self.lag) if self.frame >= self.lag else None

    def flush(self) -> list[tuple[int, list[TrackedPoint]]]:
        """The frames not yet returned, once the input has ended."""
        return [self._finish(frame) for frame in range(max(self.frame - self.lag + 1, 0), self.frame + 1)]

    def _evidence(self, score: float) -> float:
        if self.threshold is None:
            return 1.0
        return min(score / self.threshold, 1.0)

    def _continue(self, track: _Track, xy: np.ndarray, score: float) -> None:
        """The track is seen again at `xy`: a gap since its last point is bridged on the straight
        line between the two (known now, so better than the forward prediction made during it)."""
        track.kf.update(xy)
        gap = self.frame - track.last_frame
        for k in range(1, gap):
            x, y = track.last_xy + (xy - track.last_xy) * (k / gap)
            track.points[track.last_frame + k] = TrackedPoint(track.number, float(x), float(y), track.score, True)
        self._see(track, xy, score)

    def _see(self, track: _Track, xy: np.ndarray, score: float) -> None:
        """The track's detected point of this frame: its point, its evidence and its mean score."""
        track.points[self.frame] = TrackedPoint(track.number, float(xy[0]), float(xy[1]), score, False)
        track.evidence.append(self._evidence(score))
        track.score, track.last_xy, track.last_frame = score, xy, self.frame
        track.score_sum, track.detected = track.score_sum + score, track.detected + 1

    def _assign(self, tracks: Sequence[int], xy: np.ndarray) -> list[tuple[int, int]]:
        """One-to-one pairs (index into `tracks`, index into `xy`) at the least total distance, within the gate."""
        if not len(tracks) or not len(xy):
            return []
        chosen = [self.tracks[t] for t in tracks]
        predicted = np.array([[t.kf.x[0, 0], t.kf.x[1, 0]] for t in chosen])
        cost = np.hypot(predicted[:, None, 0] - xy[None, :, 0], predicted[:, None, 1] - xy[None, :, 1])
        # confirmed tracks first: a new tentative track must not take a confirmed one's point
        tentative = np.array([0.0 if t.confirmed else self.settings.gate_px for t in chosen])
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
        track = _Track(self.next_number, kf, self.frame, xy, score)
        self._see(track, xy, score)
        self.next_number += 1
        return track

    def _finish(self, frame: int) -> tuple[int, list[TrackedPoint]]:
        """The final points of `frame`: those of the tracks confirmed by now whose mean score (of
        their points to now) reaches track_score x the threshold."""
        out = []
        cut = self.settings.track_score * (self.threshold or 0.0)
        for track in (*self.tracks, *self.ended):
            point = track.points.pop(frame, None)
            if point is not None and track.confirmed and track.score_sum >= cut * track.detected - 1e-12:
                out.append(point)
        self.ended = [t for t in self.ended if t.points]
        return frame, sorted(out, key=lambda p: p.track)


def track_points(frames: list[Points], settings: TrackerSettings | None = None,
                 threshold: float | None = None) -> list[list[TrackedPoint]]:
    """Every frame's tracked points, for a whole sequence of per-frame points at once."""
    tracker = PointTracker(settings, threshold)
    out = [result for points in frames if (result := tracker.update(points)) is not None] + tracker.flush()
    assert [frame for frame, _ in out] == list(range(len(frames)))
    return [points for _, points in out]
