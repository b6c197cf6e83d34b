"""Score a dataset: ground truth from labels/, predictions from label files, a checkpoint or a classical method."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator

from pinpoint.data.dataset import Sample, dataset_stems, load_sample
from pinpoint.data.labels import read_labels
from pinpoint.data.videos import is_video_dataset, video_frames, video_stems
from pinpoint.errors import InputError
from pinpoint.outputs import prepare_output_folder
from pinpoint.metrics import Evaluator, Scores, outside_ignored
from pinpoint.points import Points
from pinpoint.report import Report

RANKING_FLOOR = 0.01  # lowest peak score kept for AP and PR curves


def evaluate_dataset(data: str | os.PathLike, split: str | os.PathLike | None = None, *, pred_dir: str | None = None,
                     weights: str | None = None, method: str | None = None, conf: float | None = None,
                     distances: Iterable[float] = (3.0,), device: str = "auto", tta: bool | None = None,
                     snap: bool | None = None, report: str | os.PathLike | None = None, max_points: int | None = None,
                     capped: list[str] | None = None, notes: list[str] | None = None) -> dict[float, Scores]:
    """Pd, precision, F1, false alarms, Fa, localisation error and AP at each matching distance.

    `data` is a folder of images and labels (or boxes, data/boxes.py: every box ignored, so that
    false alarms are counted on the rest of the frame; or images alone: backgrounds, where every
    point is a false alarm), or of videos with per-frame label CSVs (every
    labelled frame is scored, read one at a time; prediction files are then named VIDEO_000123.txt,
    as `pinpoint detect` names them). Video labels give each target's box, and a point inside
    it matches the target too, however far from the centre: a close target spans many pixels.

    With `pred_dir`, predicted label files are read (scores in the 3rd column; `conf` cuts them);
    otherwise the checkpoint or classical method is run on each image. The headline numbers use
    the detector's own threshold (or `conf`); AP and the PR curve rank every peak down to
    RANKING_FLOOR, so that they describe the model rather than one operating point. Each image
    gives at most `max_points` points (None: the checkpoint's cap); with `capped` a list, the
    images whose points above the headline threshold reached that cap are appended to it, since
    the points past it were never scored. With `notes` a list, what the detector wants said goes there
    (detect.tta_note).
    With `report`, that folder gets the PR curves, a table per image and pictures of the mistakes
    at the first distance (report.py).
    """
    data = Path(data)
    detector = None
    cut = conf
    if report is not None:
        prepare_output_folder(report, "--report", [data, data / "images", data / "labels", pred_dir])
    if pred_dir is None:
        from pinpoint.detect import make_detector, tta_note

        detector = make_detector(weights, method, device, tta=tta, snap=snap, max_points=max_points)
        if notes is not None:
            notes.extend(tta_note(detector, conf))
        cut = detector.threshold if conf is None else conf
    distances = tuple(distances)
    evaluator = Evaluator(thresholds=distances, score_threshold=cut)
    reporter = Report(report, cut) if report is not None else None
    for sample in dataset_samples(data, split):
        stem, size, truth = sample.stem, sample.image.shape, sample.truth
        if detector is None:
            path = Path(pred_dir) / f"{stem}.txt"
            if not path.is_file():
                raise InputError(f"{path}: no prediction for image {stem}")
            pred = Points.from_labels(read_labels(path), size)
        else:
            pred = detector.predict(sample.image, min(cut, RANKING_FLOOR))
            # the cap cut claims only if even the last point kept is above the headline threshold
            if capped is not None and pred.capped and len(pred) and pred.score.min() >= cut:
                capped.append(stem)
        pred = outside_ignored(pred, sample.ignore)  # not judged: neither in the scores nor in the report's pictures
        matches = evaluator.add(pred, truth, sample.boxes, sample.ignore)
        if reporter is not None:
            reporter.add(stem, sample.image, evaluator.claims(pred), truth, matches[distances[0]])
    results = evaluator.result()
    if reporter is not None:
        reporter.write(results)
    return results


def dataset_samples(data: str | os.PathLike, split: str | os.PathLike | None = None) -> Iterator[Sample]:
    """Each labelled image of an image dataset, or each labelled frame of a video dataset, in order."""
    if is_video_dataset(data):
        for stem in video_stems(data, split):
            yield from video_frames(data, stem)
    else:
        for stem in dataset_stems(data, split):
            yield load_sample(data, stem)
