"""Score tracking on videos with per-frame labels: what the tracker reports against what the
detector alone reports, frame by frame, and the tracks themselves: MOTA, IDF1 and id switches
from py-motmetrics, HOTA from TrackEval.

A point matches a target when it lies within `distance` pixels of the target's centre or inside
its box, one to one, nearest first (metrics.py). The per-frame scores of the detector alone and
of the tracker use the same matching, so their difference is what tracking adds: false alarms
that no track confirms are gone, faint targets confirmed by their track are found, and short
gaps are bridged. Every frame of a video is scored, a frame without a label row as one without
a target. The track metrics use the same match rule: HOTA's similarity of a point and a target
is 1 when they match and 0 when not, so its localisation thresholds coincide, and HOTA is the
geometric mean of detection and association accuracy at that rule.

drone-ir's labels carry no target ids; a target's id is found by linking its labelled centres
from frame to frame (`truth_ids`), which is unambiguous in all but a few bird videos.
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from pinpoint.data.videos import ALL_VIDEOS, read_video_labels, video_frames, video_stems
from pinpoint.metrics import Evaluator, Scores, pairwise_distances, within_reach
from pinpoint.points import Points
from pinpoint.tracking.runner import detect_and_track
from pinpoint.tracking.tracker import TrackerSettings

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
    hota: float
    id_switches: int
    tracks: int  # confirmed tracks reported

    def to_dict(self) -> dict:
        return {"videos": self.videos, "detection": self.detection.to_dict(), "tracking": self.tracking.to_dict(),
                "MOTA": _json(self.mota), "IDF1": _json(self.idf1), "HOTA": _json(self.hota),
                "id_switches": self.id_switches, "tracks": self.tracks}


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


class _HotaSequence:
    """One video's targets and tracked points frame by frame, as TrackEval's HOTA reads them."""

    def __init__(self) -> None:
        self.truth: list[np.ndarray] = []
        self.tracked: list[np.ndarray] = []
        self.similarity: list[np.ndarray] = []

    def add(self, truth_id: np.ndarray, track_id: np.ndarray, match: np.ndarray) -> None:
        """`match` (targets x points): which point may stand for which target."""
        self.truth.append(np.asarray(truth_id, int))
        self.tracked.append(np.asarray(track_id, int))
        self.similarity.append(match.astype(np.float64))

    def data(self) -> dict:
        """TrackEval's sequence dict: ids renumbered from 0 within the video."""
        truth = {i: k for k, i in enumerate(sorted({int(i) for ids in self.truth for i in ids}))}
        tracked = {i: k for k, i in enumerate(sorted({int(i) for ids in self.tracked for i in ids}))}
        return {"num_gt_ids": len(truth), "num_tracker_ids": len(tracked),
                "num_gt_dets": sum(map(len, self.truth)), "num_tracker_dets": sum(map(len, self.tracked)),
                "gt_ids": [np.array([truth[int(i)] for i in ids], int) for ids in self.truth],
                "tracker_ids": [np.array([tracked[int(i)] for i in ids], int) for ids in self.tracked],
                "similarity_scores": self.similarity}


HOTA_MISSING = ("HOTA needs TrackEval, which pip cannot install beside OpenCV's headless build by itself: "
                "pip install --no-deps trackeval (scripts/setup.sh does)")


def hota_metric():
    """TrackEval's HOTA, or None where TrackEval is not installed (its package asks for the full
    opencv-python, which would clash with our headless OpenCV, so it is installed without its
    dependencies; the HOTA code needs only NumPy and SciPy). TrackEval prints a note on stdout when
    an optional dataset reader of its own cannot be imported; that note is kept off pinpoint's
    output (eval --json writes there)."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            from trackeval.metrics import HOTA
    except ImportError:
        return None
    return HOTA()


def evaluate_tracking(detector, data: str | os.PathLike, split: str | os.PathLike | None = None, distance: float = 5.0,
                      settings: TrackerSettings | None = None, conf: float | None = None,
                      groups: dict[str, str] | None = None) -> dict[str, TrackingScores]:
    """Run detector and tracker over every frame of every video of a video dataset and score both.

    Returns ALL_VIDEOS ("all") and, with `groups` (video name -> group, e.g. its range), each group apart.
    """
    import motmetrics as mm  # imported here: it brings pandas, which nothing else needs

    hota = hota_metric()
    data = Path(data)
    cut = detector.threshold if conf is None else conf
    names = [ALL_VIDEOS, *sorted(set((groups or {}).values()))]
    detection = {g: Evaluator((distance,), cut) for g in names}
    tracking = {g: Evaluator((distance,)) for g in names}  # every point the tracker reports counts, faint ones too
    accumulators: dict[str, list] = {g: [] for g in names}
    hota_results: dict[str, dict] = {g: {} for g in names}
    videos = {g: 0 for g in names}
    tracks = {g: 0 for g in names}
    for stem in video_stems(data, split):
        group = [ALL_VIDEOS] + ([groups[stem]] if groups and stem in groups else [])
        ids = truth_ids(read_video_labels(data / "labels" / f"{stem}.csv").points)
        accumulator = mm.MOTAccumulator(auto_id=False)
        sequence = _HotaSequence()
        seen: set[int] = set()
        samples = ((sample, sample.image) for sample in video_frames(data, stem, all_frames=True))
        for sample, alone, tracked in detect_and_track(detector, samples, settings, cut):
            frame = int(sample.stem.rsplit("_", 1)[1])
            truth, truth_id = sample.truth, ids.get(frame, np.zeros(0, int))
            xy = np.array([[p.x, p.y] for p in tracked], np.float64).reshape(-1, 2)
            points = Points(xy, np.array([p.score for p in tracked], np.float64), truth.image_size)
            for g in group:
                detection[g].add(alone, truth, sample.boxes)
                tracking[g].add(points, truth, sample.boxes)
            gaps = pairwise_distances(xy, truth.xy)
            reach = within_reach(gaps, distance, xy, truth.xy, sample.boxes).T  # targets x points, as both libraries read them
            track_id = [p.track for p in tracked]
            accumulator.update(truth_id.tolist(), track_id, np.where(reach, gaps.T, np.nan), frameid=frame)
            sequence.add(truth_id, track_id, reach)
            seen.update(track_id)
        result = hota.eval_sequence(sequence.data()) if hota is not None else None
        for g in group:
            accumulators[g].append(accumulator)
            hota_results[g][stem] = result
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
        combined = hota.combine_sequences(hota_results[g]) if hota is not None else {"HOTA": np.nan}
        out[g] = TrackingScores(videos[g], detection[g].result()[distance], tracking[g].result()[distance],
                                float(overall["mota"]), float(overall["idf1"]), float(np.mean(combined["HOTA"])),
                                int(overall["num_switches"]), tracks[g])
    return out
