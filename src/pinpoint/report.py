"""An evaluation a user can look at: the PR curve, a table per image and a picture of every image
the detector got wrong, written to one folder beside the headline numbers.

Why: F1 0.93 says how often the detector is wrong, not where. The pictures show whether the
misses are faint specks, points beside extended targets or labels in odd places, and whether
the false alarms are clutter or targets nobody labelled; only then is it clear whether to label
more, train longer or change the threshold.

Folder layout:
    scores.json        every number of `pinpoint eval --json`, and the threshold they were cut at
    pr.png, pr.csv     precision against recall at each matching distance (the threshold's point
                       marked), and as numbers: the cuts where recall rises, and the lowest cut
    per_image.csv      targets, points, hits, misses and false alarms of every image
    mistakes/NAME.png  images with a miss or a false alarm: hits green, false alarms yellow (with
                       their scores), missed targets red
A report written again into the same folder replaces the pictures of the one before, so that no
picture of a mistake the detector no longer makes is left behind.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np

from pinpoint.files import write_text
from pinpoint.metrics import Match, Scores
from pinpoint.points import Points
from pinpoint.viz import draw_points, plot_pr, save_image, to_bgr8

HIT, FALSE_ALARM, MISS = (0, 200, 0), (0, 255, 255), (0, 0, 255)  # BGR


def draw_mistakes(grey: np.ndarray, points: Points, truth: Points, pred_matched: np.ndarray,
                  gt_matched: np.ndarray) -> np.ndarray:
    """The image with its hits green, false alarms yellow (both with scores) and missed targets red."""
    picture = to_bgr8(grey)
    picture = draw_points(picture, truth[~gt_matched], MISS, radius=9.0, label=False)
    picture = draw_points(picture, points[pred_matched], HIT)
    return draw_points(picture, points[~pred_matched], FALSE_ALARM)


def steps(recall: np.ndarray) -> np.ndarray:
    """Indices of the cuts where recall rises, and the lowest cut: the corners of the PR curve that
    AP is computed from. The cuts between them only add false alarms, one by one: on NUAA-SIRST's
    test split the previous default's curve (seed 0) has 19,271 cuts, 256 of them corners."""
    if not len(recall):
        return np.zeros(0, dtype=int)
    rises = np.nonzero(np.diff(np.r_[0.0, np.nan_to_num(recall)]) > 0)[0]
    return np.union1d(rises, [len(recall) - 1])


class Report:
    """Collects what `evaluate_dataset` sees image by image and writes the folder at the end.

    `threshold` is the score cut of the headline numbers (None: every point handed in is a claim),
    shown in scores.json and on the PR curve.
    """

    def __init__(self, folder: str | os.PathLike, threshold: float | None):
        self.folder = Path(folder)
        self.threshold = threshold
        self.rows: list[dict] = []
        for stale in (self.folder / "mistakes").glob("*.png"):
            stale.unlink()

    def add(self, name: str, grey: np.ndarray, points: Points, truth: Points, match: Match) -> None:
        """One image: the points the headline numbers count (Evaluator.claims), its ground truth and
        their matching (Evaluator.add's, at the distance the table and pictures use)."""
        hits = int(match.pred_matched.sum())
        row = dict(image=name, targets=len(truth), points=len(points), hits=hits,
                   misses=len(truth) - hits, false_alarms=len(points) - hits)
        self.rows.append(row)
        if row["misses"] or row["false_alarms"]:
            picture = draw_mistakes(grey, points, truth, match.pred_matched, match.gt_matched)
            save_image(self.folder / "mistakes" / f"{name}.png", picture)

    def write(self, results: dict[float, Scores]) -> None:
        """scores.json, pr.png, pr.csv and per_image.csv (the pictures are written as images come)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        scores = {f"{d:g}px": s.to_dict() for d, s in results.items()}
        write_text(self.folder / "scores.json",
                   json.dumps({"threshold": self.threshold, "scores": scores}, indent=2) + "\n")
        lines = ["dist_px,threshold,recall,precision\n"]
        for d, s in results.items():
            curve = s.pr_curve
            for i in steps(curve.recall):
                lines.append(f"{d:g},{float(curve.thresholds[i])!r},{float(curve.recall[i])!r},{float(curve.precision[i])!r}\n")
        write_text(self.folder / "pr.csv", "".join(lines))
        curves = {f"{d:g} px": (s.pr_curve.recall, s.pr_curve.precision, s.AP) for d, s in results.items()}
        cut = "every point" if self.threshold is None else f"threshold {self.threshold:.3f}"
        plot_pr(curves, self.folder / "pr.png", title=f"{len(self.rows)} images, {cut} marked",
                marks={f"{d:g} px": (s.Pd, s.precision) for d, s in results.items()})
        table = io.StringIO()
        writer = csv.DictWriter(table, fieldnames=list(self.rows[0]) if self.rows else ["image"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        write_text(self.folder / "per_image.csv", table.getvalue())
