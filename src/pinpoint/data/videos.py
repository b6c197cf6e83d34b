"""Videos with per-frame point labels, as training samples read straight from the videos.

Layout (drone-ir's): DIR/videos/NAME.mp4 beside DIR/labels/NAME.csv, optionally restricted by a
split file of video names. A label CSV has the header `frame,x,y,w,h,class` and one row per
target per frame: frames counted from 0 in decoding order, (x, y) the target's centre in pixels of
the pixel-index convention (the centre of pixel (row i, column j) is x = j, y = i), w and h its
box. A frame with at least one row is a labelled frame; a frame with none (the few at a video's
end that drone-ir leaves unlabelled) is not a sample, since "no row" there means "not labelled",
not "no target".

Frames are decoded once, in order, and every `every`-th labelled frame is kept in memory as a
Sample named VIDEO_000123, the name `pinpoint detect` gives the same frame. Neighbouring frames
are near-copies of each other, so every tenth frame or so carries most of what a video teaches.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from pinpoint.data.dataset import Sample, report_problems, split_members
from pinpoint.errors import InputError
from pinpoint.files import check_regular_file, find_by_stem, list_by_stem, read_user_text

LABEL_COLUMNS = ("frame", "x", "y", "w", "h", "class")
ALL_VIDEOS = "all"  # the group of every video in eval --track's scores
MAX_LABEL_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class VideoLabels:
    """One video's labels: each labelled frame's points (N, 2) in pixels, their boxes' widths and
    heights (N, 2), and the CSV row of each point (errors found once the frame is decoded name it)."""

    points: dict[int, np.ndarray]
    rows: dict[int, list[int]]
    path: Path
    boxes: dict[int, np.ndarray]


def is_video_dataset(folder: str | os.PathLike) -> bool:
    """True for a folder laid out as DIR/videos/*.mp4 beside DIR/labels/*.csv."""
    folder = Path(folder)
    return (folder / "videos").is_dir() and not (folder / "images").is_dir()


def video_groups(folder: str | os.PathLike) -> dict[str, str]:
    """Video name -> its range (close, medium, distant), from the `distance` column of the dataset's
    videos.csv (drone-ir's); empty without that file. A video listed twice, and a range named
    "all" (the name the scores give every video together), are InputErrors naming the line."""
    table = Path(folder) / "videos.csv"
    if not table.is_file():
        return {}
    reader = csv.DictReader(io.StringIO(read_user_text(table, "video table")))
    groups: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for row in reader:
        name, distance = (row.get("name") or "").strip(), (row.get("distance") or "").strip()
        if not name or not distance:
            continue
        if name in first_line:
            raise InputError(f"{table}:{reader.line_num}: {name} is listed again (first on line {first_line[name]})")
        if distance.lower() == ALL_VIDEOS:
            raise InputError(f"{table}:{reader.line_num}: range {distance!r}: '{ALL_VIDEOS}' is what the scores call every "
                             "video together; give the video's own range (close, medium, distant)")
        first_line[name] = reader.line_num
        groups[name] = distance.lower()
    return groups


def read_video_labels(path: str | os.PathLike) -> VideoLabels:
    """The label CSV of one video; a malformed file or row is an InputError naming the file and row."""
    path = Path(path)
    text = read_user_text(path, "label CSV", MAX_LABEL_BYTES)
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or tuple(h.strip() for h in header) != LABEL_COLUMNS:
        raise InputError(f"{path}:1: expected the header {','.join(LABEL_COLUMNS)}, got {','.join(header or [])!r}")
    points: dict[int, list[tuple[float, float]]] = {}
    boxes: dict[int, list[tuple[float, float]]] = {}
    rows: dict[int, list[int]] = {}
    first_row: dict[tuple, int] = {}  # each row's values -> where it was first given
    for number, row in enumerate(reader, start=2):
        if not row or not "".join(row).strip():
            continue
        if len(row) != len(LABEL_COLUMNS):
            raise InputError(f"{path}:{number}: expected {len(LABEL_COLUMNS)} values ({','.join(LABEL_COLUMNS)}), got {len(row)}")
        try:
            frame = int(row[0])
            x, y, w, h = (float(value) for value in row[1:5])
        except ValueError:
            raise InputError(f"{path}:{number}: frame must be a whole number and x, y, w, h numbers, got {','.join(row)!r}") from None
        if frame < 0 or not all(math.isfinite(v) for v in (x, y, w, h)) or w < 0 or h < 0:
            raise InputError(f"{path}:{number}: frame must be >= 0, x and y finite, w and h >= 0, got {','.join(row)!r}")
        key = (frame, x, y, w, h, row[5].strip())
        if key in first_row:  # two targets may cross at one centre, but not with one box and one class too
            raise InputError(f"{path}:{number}: the same row as row {first_row[key]} (frame {frame} at x {x:g}, y {y:g}): "
                             "one target labelled twice would count as two")
        first_row[key] = number
        points.setdefault(frame, []).append((x, y))
        boxes.setdefault(frame, []).append((w, h))
        rows.setdefault(frame, []).append(number)
    return VideoLabels({frame: np.array(xy, dtype=np.float64) for frame, xy in points.items()}, rows, path,
                       {frame: np.array(wh, dtype=np.float64) for frame, wh in boxes.items()})


def video_stems(folder: str | os.PathLike, split: str | os.PathLike | None = None,
                skipped: list[str] | None = None) -> list[str]:
    """The videos of a video dataset: those of the split file, or every video in DIR/videos.

    Each must have its video and its label CSV, checked now, before any video is read: a missing
    one is an InputError naming the file (and the split file's line), or with `skipped` a list is
    recorded there and left out."""
    from pinpoint.sources import VIDEO_SUFFIXES

    folder = Path(folder)
    if not (folder / "videos").is_dir():
        raise InputError(f"{folder}: no videos/ folder (expected DIR/videos and DIR/labels)")

    def check(stem: str) -> str:
        find_by_stem(folder / "videos", stem, VIDEO_SUFFIXES, "video")
        check_regular_file(folder / "labels" / f"{stem}.csv", "label CSV")
        return stem

    if split is not None:
        return [stem for stem in split_members(split, check, skipped, f"a video in {folder / 'videos'}") if stem]
    stems = [p.stem for p in list_by_stem(folder / "videos", VIDEO_SUFFIXES, "video")]
    if not stems:
        raise InputError(f"{folder / 'videos'}: no videos found")
    kept = []
    for stem in stems:
        try:
            kept.append(check(stem))
        except InputError as exc:
            report_problems([str(exc)], skipped)
    return kept


def load_video_frames(folder: str | os.PathLike, stems: list[str], every: int = 10,
                      skipped: list[str] | None = None) -> list[Sample]:
    """Every `every`-th labelled frame of each video in `stems`, decoded and kept in memory.

    A video that cannot be opened or decoded, or whose labels are malformed or name a frame past
    its end, stops loading with an InputError naming it, or with `skipped` a list is recorded
    there and left out.
    """
    if every < 1:
        raise InputError(f"--every {every}: must be a whole number >= 1")
    samples: list[Sample] = []
    for stem in stems:
        try:
            samples.extend(video_frames(folder, stem, every))
        except InputError as exc:
            report_problems([str(exc)], skipped)
    return samples


def video_frames(folder: str | os.PathLike, stem: str, every: int = 1, all_frames: bool = False) -> Iterator[Sample]:
    """Every `every`-th labelled frame of one video, decoded one at a time (for scoring a whole
    video without holding it in memory). With `all_frames`, every frame to the video's end
    instead, in order, as tracking needs them: a frame with no label row has no target (drone-ir's
    convention). Its problems are InputErrors naming the file and row; a label past the video's
    end is found once the video has been read to its end."""
    from pinpoint.sources import VIDEO_SUFFIXES, VideoFile

    if every < 1:
        raise InputError(f"--every {every}: must be a whole number >= 1")
    folder = Path(folder)
    path = find_by_stem(folder / "videos", stem, VIDEO_SUFFIXES, "video")
    labels = read_video_labels(folder / "labels" / f"{stem}.csv")
    if not labels.points and not all_frames:
        raise InputError(f"{labels.path}: no labelled frame")
    labelled = sorted(labels.points)
    wanted = set(labelled[::every])
    last = max(labelled, default=-1)
    nothing = np.zeros((0, 2))
    decoded = 0
    for frame in VideoFile(path).frames():
        decoded = frame.index + 1
        if frame.index in wanted or all_frames:
            xy = labels.points.get(frame.index, nothing)
            boxes = labels.boxes.get(frame.index, nothing)
            check_in_frame(labels, frame.index, xy, boxes, frame.image.shape)
            yield Sample(f"{stem}_{frame.index:06d}", frame.image, xy, path, boxes)
        if frame.index >= last and not all_frames:
            break
    if last >= decoded:
        raise InputError(f"{labels.path}:{labels.rows[last][0]}: frame {last} is past the video's end ({decoded} frames decoded "
                         f"from {path})")


def check_in_frame(labels: VideoLabels, frame: int, xy: np.ndarray, boxes: np.ndarray, size: tuple[int, int]) -> None:
    """A labelled point must lie in its frame and its box fit in it: a box larger than the frame
    would cover the whole target-free area that false alarms are counted over. The row is named."""
    height, width = size
    outside = np.flatnonzero((xy[:, 0] < -0.5) | (xy[:, 0] > width - 0.5) | (xy[:, 1] < -0.5) | (xy[:, 1] > height - 0.5))
    if len(outside):
        raise InputError(f"{labels.path}:{labels.rows[frame][outside[0]]}: a point of frame {frame} lies outside the "
                         f"{width} x {height} frame")
    too_large = np.flatnonzero((boxes[:, 0] > width) | (boxes[:, 1] > height))
    if len(too_large):
        w, h = boxes[too_large[0]]
        raise InputError(f"{labels.path}:{labels.rows[frame][too_large[0]]}: box {w:g} x {h:g} is larger than the "
                         f"{width} x {height} frame; a target's box fits in its frame")
