"""Score tracking on videos with per-frame labels: what the tracker reports against what the
detector alone reports, frame by frame, and the tracks themselves (MOTA, IDF1, id switches from
py-motmetrics).

A point matches a target when it lies within `distance` pixels of the target's centre or inside
its box, one to one, nearest first (metrics.py). The per-frame scores of the detector alone and
of the tracker use the same matching, so their difference is what tracking adds: false alarms
that no track confirms are gone, and short gaps are bridged.

drone-ir's labels carry no target ids; a target's id is found by linking its labelled centres
from frame to frame (`truth_ids`), which is unambiguous in all but a few bird videos.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from pinpoint.data.videos import read_video_labels, video_frames, video_stems
from pinpoint.metrics import Evaluator, Scores, pairwise_distances, within_reach
from pinpoint.points import Points
from pinpoint.tracking import PointTracker, TrackedPoint, TrackerSettings

TRUTH_GATE_PX = 20.0  # a labelled target farther than this from every one of the previous frame is a new target


@dataclass(frozen=True)
class TrackingScores:
    """One group of videos: per-frame scores of the detector alone and of the tracker, and the
    track metrics (NaN where undefined)."""

    videos: int
    detection: Scores
    tracking: Scores
    mota: float
    idf1: float
    id_switches: int
    tracks: int  # confirmed tracks reported

    def to_dict(self) -> dict:
        return {"videos": self.videos, "detection": self.detection.to_dict(), "tracking": self.tracking.to_dict(),
                "MOTA": _json(self.mota), "IDF1": _json(self.idf1), "id_switches": self.id_switches, "tracks": self.tracks}


def _json(value: float) -> float | None:
    return None if not np.isfinite(value) else float(value)


def truth_ids(points: dict[int, np.ndarray], gate: float = TRUTH_GATE_PX) -> dict[int, np.ndarray]:
    """An id for each labelled target of each frame: the id of the target it continues in the
    previous labelled frame (one to one, least total distance, within `gate`), else a new one."""
    ids: dict[int, np.ndarray] = {}
    previous, previous_ids, next_id = np.zeros((0, 2)), np.zeros(0, int), 1
    for frame in sorted(points):
        xy = points[frame]
        current = np.zeros(len(xy), int)
        if len(previous) and len(xy):
            cost = pairwise_distances(previous, xy)
            rows, cols = linear_sum_assignment(np.where(cost <= gate, cost, 1e9))
            for r, c in zip(rows, cols):
                if cost[r, c] <= gate:
                    current[c] = previous_ids[r]
        for k in np.flatnonzero(current == 0):
            current[k], next_id = next_id, next_id + 1
        ids[frame] = current
        previous, previous_ids = xy, current
    return ids


def evaluate_tracking(detector, data: str | os.PathLike, split: str | os.PathLike | None = None, distance: float = 5.0,
                      settings: TrackerSettings | None = None, conf: float | None = None,
                      groups: dict[str, str] | None = None) -> dict[str, TrackingScores]:
    """Run detector and tracker over every video of a video dataset and score both.

    Returns "all" and, with `groups` (video name -> group, e.g. its range), each group apart.
    """
    import motmetrics as mm  # imported here: it brings pandas, which nothing else needs

    data = Path(data)
    cut = detector.threshold if conf is None else conf
    names = ["all", *sorted(set((groups or {}).values()))]
    detection = {g: Evaluator((distance,), cut) for g in names}
    tracking = {g: Evaluator((distance,), cut) for g in names}
    accumulators: dict[str, list] = {g: [] for g in names}
    videos = {g: 0 for g in names}
    tracks = {g: 0 for g in names}
    for stem in video_stems(data, split):
        group = ["all"] + ([groups[stem]] if groups and stem in groups else [])
        labels = read_video_labels(data / "labels" / f"{stem}.csv")
        ids = truth_ids(labels.points)
        accumulator = mm.MOTAccumulator(auto_id=False)
        tracker = PointTracker(settings)
        pending: deque = deque()  # the labelled frames whose tracked points are not final yet
        seen: set[int] = set()

        def score_final(done: tuple[int, list[TrackedPoint]]) -> None:
            frame, truth, boxes, truth_id = pending.popleft()
            tracked = done[1]
            xy = np.array([[p.x, p.y] for p in tracked], np.float64).reshape(-1, 2)
            points = Points(xy, np.array([p.score for p in tracked], np.float64), truth.image_size)
            for g in group:
                tracking[g].add(points, truth, boxes)
            reach = within_reach(pairwise_distances(xy, truth.xy), distance, xy, truth.xy, boxes)
            gaps = np.where(reach.T, pairwise_distances(truth.xy, xy), np.nan)
            accumulator.update(truth_id.tolist(), [p.track for p in tracked], gaps, frameid=frame)
            seen.update(p.track for p in tracked)

        for sample in video_frames(data, stem):
            frame = int(sample.stem.rsplit("_", 1)[1])
            raw = detector.predict(sample.image, cut)
            for g in group:
                detection[g].add(raw, sample.truth, sample.boxes)
            pending.append((frame, sample.truth, sample.boxes, ids[frame]))
            done = tracker.update(raw)
            if done is not None:
                score_final(done)
        for done in tracker.flush():
            score_final(done)
        for g in group:
            accumulators[g].append(accumulator)
            videos[g] += 1
            tracks[g] += len(seen)
    metrics = mm.metrics.create()
    out = {}
    for g in names:
        if not videos[g]:
            continue
        summary = metrics.compute_many(accumulators[g], metrics=["mota", "idf1", "num_switches"],
                                       names=[f"{g}{k}" for k in range(len(accumulators[g]))], generate_overall=True)
        overall = summary.loc["OVERALL"]
        out[g] = TrackingScores(videos[g], detection[g].result()[distance], tracking[g].result()[distance],
                                float(overall["mota"]), float(overall["idf1"]), int(overall["num_switches"]), tracks[g])
    return out
