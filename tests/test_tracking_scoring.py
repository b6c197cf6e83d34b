"""Tracking scores on videos: the tracker against the detector alone, MOTA and IDF1 from py-motmetrics, HOTA from TrackEval."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pinpoint.data.synth_video import synthesize_videos
from pinpoint.data.videos import read_video_labels
from pinpoint.points import Points
from pinpoint.tracking.scoring import evaluate_tracking, truth_ids

pytest.importorskip("motmetrics")


class LabelledDetector:
    """A stand-in detector that returns each frame's true points (read from the labels) with a
    little noise, misses `missed` frames and adds a clutter point on `flicker` frames: a known input
    for the tracker and the scoring."""

    threshold = 0.5

    def __init__(self, root: Path, name: str, missed: set[int], flicker: set[int]) -> None:
        self.labels = read_video_labels(root / "labels" / f"{name}.csv").points
        self.missed, self.flicker, self.frame = missed, flicker, -1
        self.rng = np.random.default_rng(0)

    def predict(self, image: np.ndarray, conf: float | None = None) -> Points:
        self.frame += 1
        truth = self.labels.get(self.frame, np.zeros((0, 2)))
        xy = [] if self.frame in self.missed else list(truth + self.rng.normal(0, 0.2, truth.shape))
        if self.frame in self.flicker:
            xy.append(np.array([5.0, 5.0]))
        xy = np.array(xy, np.float64).reshape(-1, 2)
        return Points(xy, np.full(len(xy), 0.9), image.shape)


def test_tracking_drops_a_flicker_and_bridges_a_gap(tmp_path: Path) -> None:
    truth = synthesize_videos(tmp_path, n=1, frames=30, seed=2)
    (tmp_path / "one.txt").write_text("synth_video_00\n")
    targets = len(truth["synth_video_00"])
    detector = LabelledDetector(tmp_path, "synth_video_00", missed={14}, flicker={8, 20})
    scores = evaluate_tracking(detector, tmp_path, tmp_path / "one.txt", distance=5.0, groups={"synth_video_00": "far"})
    s = scores["all"]
    assert (s.detection.false_positives, s.detection.false_negatives) == (2, targets)  # the flickers and the missed frame
    assert (s.tracking.false_positives, s.tracking.false_negatives) == (0, 0)  # flickers never confirmed, the gap bridged
    assert s.tracking.F1 == 1.0 > s.detection.F1
    assert s.mota == pytest.approx(1.0) and s.idf1 == pytest.approx(1.0) and s.hota == pytest.approx(1.0)
    assert s.id_switches == 0
    assert s.tracks == targets and scores["far"].videos == 1


def test_truth_ids_follow_each_target_and_start_new_ones() -> None:
    points = {0: np.array([[10.0, 10.0], [100.0, 10.0]]), 1: np.array([[102.0, 11.0], [12.0, 10.0]]),
              2: np.array([[14.0, 10.0]]), 5: np.array([[200.0, 200.0], [16.0, 10.0]])}
    ids = truth_ids(points)
    assert ids[0].tolist() == [1, 2] and ids[1].tolist() == [2, 1] and ids[2].tolist() == [1] and ids[5].tolist() == [3, 1]


def test_eval_track_reports_detector_and_tracker_per_group(tmp_path: Path, capsys) -> None:
    import json

    from pinpoint.cli import main

    synthesize_videos(tmp_path, n=2, frames=20, seed=4)
    (tmp_path / "videos.csv").write_text("name,class,distance\nsynth_video_00,drone,CLOSE\nsynth_video_01,bird,DISTANT\n")
    assert main(["eval", "--data", str(tmp_path), "--track", "--json", "--device", "cpu"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert set(results) == {"all", "close", "distant"} and results["all"]["videos"] == 2
    for group in results.values():
        assert group["tracking"]["false_positives"] <= group["detection"]["false_positives"]
        assert group["detection"]["max_dist"] == 5.0
    assert main(["eval", "--data", str(tmp_path), "--track", "--pred", str(tmp_path)]) == 2  # scores a model, not files


def test_without_trackeval_hota_is_left_out_with_a_note(tmp_path: Path, capsys, monkeypatch) -> None:
    import sys

    from pinpoint.cli import main

    synthesize_videos(tmp_path, n=1, frames=12, seed=5)
    monkeypatch.setitem(sys.modules, "trackeval", None)  # importing it now fails, as where it is not installed
    monkeypatch.setitem(sys.modules, "trackeval.metrics", None)
    assert main(["eval", "--data", str(tmp_path), "--track", "--device", "cpu"]) == 0
    out, err = capsys.readouterr()
    assert "HOTA" in out and "pip install --no-deps trackeval" in err
    assert out.splitlines()[3].split()[-2] == "-"  # the tracker row's HOTA cell
