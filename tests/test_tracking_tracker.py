"""The point tracker: ids kept through a crossing, one-frame flickers dropped, short gaps bridged."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pinpoint.points import Points
from pinpoint.tracking import PointTracker, TrackerSettings, track_points

SIZE = (256, 320)


def frames_of(paths: list[np.ndarray], rng: np.random.Generator, noise: float = 0.3,
              drop: dict[int, set[int]] | None = None, extra: dict[int, list[tuple[float, float]]] | None = None,
              score: float = 0.8) -> list[Points]:
    """Per-frame detected points of targets on `paths` ((F, 2) each), with a little noise and
    `score`; `drop` maps a frame to the paths not detected there, `extra` a frame to clutter points."""
    frames = []
    for f in range(len(paths[0])):
        xy = [path[f] + rng.normal(0, noise, 2) for k, path in enumerate(paths) if k not in (drop or {}).get(f, set())]
        xy += [np.array(p) for p in (extra or {}).get(f, [])]
        xy = np.array(xy, np.float64).reshape(-1, 2)
        frames.append(Points(xy, np.full(len(xy), score), SIZE))
    return frames


def line(start, velocity, frames: int = 40) -> np.ndarray:
    return np.asarray(start, np.float64) + np.arange(frames)[:, None] * np.asarray(velocity, np.float64)


def ids_along(path: np.ndarray, tracked: list, near: float = 2.0) -> list[int | None]:
    """The track id reported nearest the path in each frame (None: nothing within `near`)."""
    out = []
    for f, points in enumerate(tracked):
        best = min(points, key=lambda p: np.hypot(p.x - path[f, 0], p.y - path[f, 1]), default=None)
        out.append(best.track if best is not None and np.hypot(best.x - path[f, 0], best.y - path[f, 1]) <= near else None)
    return out


def test_ids_are_kept_through_a_crossing() -> None:
    # two targets crossing at frame 20, at an angle, at 2 px a frame
    a, b = line((60, 100), (2, 0)), line((80, 60), (1, 2))
    assert np.hypot(*(a[20] - b[20])) < 1e-9
    tracked = track_points(frames_of([a, b], np.random.default_rng(0)))
    assert all(len(points) == 2 for points in tracked)
    # at frame 20 the two points coincide and either id is right; on each side of it, each path keeps one id
    ids_a, ids_b = ids_along(a, tracked), ids_along(b, tracked)
    del ids_a[20], ids_b[20]
    assert len({i for i in ids_a if i is not None}) == 1 and len({i for i in ids_b if i is not None}) == 1
    assert set(ids_a) != set(ids_b)
    assert None not in ids_a and None not in ids_b  # every frame, the first ones too, once confirmed


def test_a_one_frame_flicker_is_not_reported() -> None:
    a = line((50, 50), (1.5, 0.5))
    tracked = track_points(frames_of([a], np.random.default_rng(1), extra={10: [(200.0, 200.0)], 25: [(30.0, 220.0)]}))
    assert all(len(points) == 1 for points in tracked)
    assert all(np.hypot(points[0].x - a[f, 0], points[0].y - a[f, 1]) < 1.5 for f, points in enumerate(tracked))


@pytest.mark.parametrize("gap, settings", [({18, 19}, TrackerSettings()), ({18, 19, 20, 21}, TrackerSettings(max_missed=4))])
def test_a_short_gap_is_bridged_between_its_ends(gap: set[int], settings: TrackerSettings) -> None:
    a = line((40, 200), (2.0, -1.0))
    tracked = track_points(frames_of([a], np.random.default_rng(2), noise=0.1, drop={f: {0} for f in gap}), settings)
    assert all(len(points) == 1 for points in tracked) and len({p.track for ps in tracked for p in ps}) == 1
    for f, points in enumerate(tracked):
        assert points[0].predicted == (f in gap)
        assert np.hypot(points[0].x - a[f, 0], points[0].y - a[f, 1]) < 0.5  # on the line between the gap's two ends


def test_a_long_gap_ends_the_track() -> None:
    a = line((40, 40), (1.0, 1.0), frames=40)
    settings = TrackerSettings(max_missed=3)
    tracked = track_points(frames_of([a], np.random.default_rng(3), drop={f: {0} for f in range(15, 25)}), settings)
    before = {p.track for ps in tracked[:15] for p in ps}
    after = {p.track for ps in tracked[25:] for p in ps}
    assert len(before) == len(after) == 1 and before != after  # a new id after the gap
    assert not any(tracked[15:25])  # a gap that does not close is not bridged: the track is not carried on


def test_streaming_gives_each_frame_once_lag_frames_late() -> None:
    frames = frames_of([line((50, 50), (1, 0), frames=12)], np.random.default_rng(4))
    tracker = PointTracker(TrackerSettings(confirm_hits=2, confirm_window=3, max_missed=1))
    assert tracker.lag == 2
    returned = [tracker.update(points) for points in frames]
    assert returned[:2] == [None, None] and [r[0] for r in returned[2:]] == list(range(10))
    assert [frame for frame, _ in tracker.flush()] == [10, 11]


def test_a_faint_target_is_reported_once_its_track_has_gathered_enough_evidence() -> None:
    # a target scoring 0.6 of the threshold in every frame: a single-frame cut never reports it
    a = line((60, 60), (1.0, 0.5), frames=30)
    frames = frames_of([a], np.random.default_rng(5), score=0.3)
    evidence_only = TrackerSettings(confirm_hits=3, confirm_window=5, candidates=0.5, track_score=0.0)
    assert track_points(frames, dataclasses.replace(evidence_only, candidates=1.0), threshold=0.5) == [[]] * 30
    # evidence 0.6 a frame reaches 3 in 5 frames: the whole track is reported, its first frames included
    tracked = track_points(frames, evidence_only, threshold=0.5)
    assert all(len(points) == 1 and not points[0].predicted for points in tracked)
    # a faint target seen in 3 frames of 5 gathers only 1.8: not enough
    frames = frames_of([a], np.random.default_rng(5), score=0.3, drop={f: {0} for f in range(30) if f % 5 in (1, 3)})
    assert track_points(frames, evidence_only, threshold=0.5) == [[]] * 30
    # and with the track's mean score asked to reach 1.1 x the threshold, a target that never does is not reported
    frames = frames_of([a], np.random.default_rng(5), score=0.3)
    assert track_points(frames, dataclasses.replace(evidence_only, track_score=1.1), threshold=0.5) == [[]] * 30


def test_a_confident_flicker_counts_once() -> None:
    # a one-frame point far above the threshold is one hit, not three
    a = line((50, 50), (1.5, 0.5))
    frames = frames_of([a], np.random.default_rng(6), score=0.6, extra={12: [(200.0, 30.0)]})
    frames[12].score[-1] = 1.0
    tracked = track_points(frames, TrackerSettings(candidates=0.5), threshold=0.3)
    assert all(len(points) == 1 for points in tracked)


def test_lasting_clutter_near_the_threshold_is_dropped_and_a_target_kept_through_its_faint_frames() -> None:
    target, clutter = line((40, 40), (1.5, 1.0), frames=40), line((250, 200), (0.0, 0.0), frames=40)
    frames = frames_of([target, clutter], np.random.default_rng(7))
    for f, points in enumerate(frames):
        points.score[:] = [0.4 if f % 4 == 0 else 0.8, 0.52]  # the target dips below the threshold every 4th frame
    settings = TrackerSettings(candidates=0.7, track_score=1.1)
    tracked = track_points(frames, settings, threshold=0.5)
    assert all(len(points) == 1 and np.hypot(points[0].x - target[f, 0], points[0].y - target[f, 1]) < 1.5
               for f, points in enumerate(tracked))  # the clutter's mean 0.52 is below 1.1 x 0.5; the target's 0.7 is not
    # at the frame's own threshold alone, the clutter is reported in every frame and the target's faint frames are missed
    plain = track_points(frames, TrackerSettings(candidates=1.0, track_score=0.0), threshold=0.5)
    assert all(any(np.hypot(p.x - 250, p.y - 200) < 1.5 for p in points) for points in plain)
    assert all(p.predicted for f in range(4, 40, 4) for p in plain[f] if np.hypot(p.x - 250, p.y - 200) > 1.5)


@pytest.mark.parametrize("threshold", [None, 0.0])
def test_without_a_threshold_every_point_is_a_full_detection(threshold) -> None:
    a = line((50, 50), (1.0, 1.0), frames=20)
    tracked = track_points(frames_of([a], np.random.default_rng(8), score=0.01), TrackerSettings(), threshold)
    assert all(len(points) == 1 for points in tracked)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        TrackerSettings(confirm_hits=6, confirm_window=5)
    with pytest.raises(ValueError):
        TrackerSettings(gate_px=0)
    with pytest.raises(ValueError):
        TrackerSettings(candidates=1.5)
    with pytest.raises(ValueError):
        TrackerSettings(track_score=-1)
