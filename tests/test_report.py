"""`pinpoint eval --report`: PR curves, a table per image and pictures of the mistakes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np

from pinpoint.cli import main
from pinpoint.data.labels import write_labels
from pinpoint.report import FALSE_ALARM, HIT, MISS

SIZE = (60, 80)  # H, W


def write_case(root: Path) -> tuple[Path, Path]:
    """Three grey images with labels and predictions whose matching is known at 3 px:
    a: targets at (10, 10) and (40, 30); points at (11, 10) 0.9 (hit), (70, 50) 0.8 (false alarm),
       (40, 31) 0.2 (would hit, but under the 0.5 cut: the second target is a miss);
    b: one target at (20, 20), hit at (20, 21) 0.7;   c: no target, no point."""
    height, width = SIZE
    truth = {"a": [(10, 10), (40, 30)], "b": [(20, 20)], "c": []}
    pred = {"a": [(11, 10, 0.9), (70, 50, 0.8), (40, 31, 0.2)], "b": [(20, 21, 0.7)], "c": []}
    (root / "images").mkdir(parents=True)
    for name in truth:
        cv2.imwrite(str(root / "images" / f"{name}.png"), np.full(SIZE, 60, np.uint8))
        xy = np.array(truth[name], float).reshape(-1, 2) / (width, height)
        write_labels(root / "labels" / f"{name}.txt", xy)
        rows = np.array(pred[name], float).reshape(-1, 3)
        write_labels(root / "pred" / f"{name}.txt", rows[:, :2] / (width, height), rows[:, 2])
    return root, root / "pred"


def colour_near(picture: np.ndarray, x: int, y: int, colour: tuple[int, int, int], radius: int = 10) -> bool:
    window = picture[max(y - radius, 0):y + radius + 1, max(x - radius, 0):x + radius + 1].astype(int)
    return bool(np.any(np.abs(window - np.array(colour)).sum(axis=-1) < 60))


def test_report_counts_each_image_and_draws_only_the_images_with_mistakes(tmp_path: Path, capsys) -> None:
    data, pred = write_case(tmp_path / "data")
    report = tmp_path / "report"
    (report / "mistakes").mkdir(parents=True)
    (report / "mistakes" / "gone.png").write_bytes(b"a picture from an earlier report")
    assert main(["eval", "--data", str(data), "--pred", str(pred), "--conf", "0.5", "--dist", "3", "5",
                 "--report", str(report)]) == 0
    assert str(report) in capsys.readouterr().out
    with open(report / "per_image.csv", newline="") as f:
        rows = {row["image"]: {k: int(v) for k, v in row.items() if k != "image"} for row in csv.DictReader(f)}
    assert rows == {"a": dict(targets=2, points=2, hits=1, misses=1, false_alarms=1),
                    "b": dict(targets=1, points=1, hits=1, misses=0, false_alarms=0),
                    "c": dict(targets=0, points=0, hits=0, misses=0, false_alarms=0)}
    assert sorted(p.name for p in (report / "mistakes").iterdir()) == ["a.png"]
    picture = cv2.imread(str(report / "mistakes" / "a.png"))
    assert picture.shape[:2] == SIZE
    assert colour_near(picture, 11, 10, HIT) and not colour_near(picture, 11, 10, FALSE_ALARM)
    assert colour_near(picture, 70, 50, FALSE_ALARM) and not colour_near(picture, 70, 50, HIT)
    assert colour_near(picture, 40, 30, MISS) and not colour_near(picture, 40, 30, HIT)
    saved = json.loads((report / "scores.json").read_text())
    assert saved["threshold"] == 0.5
    assert saved["scores"]["3px"]["Pd"] == 2 / 3 and saved["scores"]["3px"]["precision"] == 2 / 3
    # the PR curve ranks every point, the one under the cut too: at the lowest cut all 3 targets are hit
    with open(report / "pr.csv", newline="") as f:
        curve = [row for row in csv.DictReader(f) if row["dist_px"] == "3"]
    assert [float(row["threshold"]) for row in curve] == [0.9, 0.7, 0.2]  # 0.8 adds a false alarm, no target
    assert [float(row["recall"]) for row in curve] == [1 / 3, 2 / 3, 1.0]
    assert [float(row["precision"]) for row in curve] == [1.0, 2 / 3, 3 / 4]
    assert cv2.imread(str(report / "pr.png")) is not None
