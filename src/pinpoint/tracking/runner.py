"""The per-video runner of `pinpoint track`: detection on every frame, then the point tracker
(tracker.py), each sequence on its own.

A source is one sequence (a video, a folder of frames, a dataset folder with images/, a glob, a
list) or several (a folder of videos, or a dataset folder with videos/). A folder holding both
videos and images is refused rather than guessed at; other files in it (a README) are ignored.
Outputs, each written atomically (outputs.py):

- CSV, header `frame,track,x,y,score`: one row per tracked point; frames from 0, x and y in
  pixels (pixel-index convention). A point carried over a gap on its track's prediction has no
  detection, hence an empty score. "-": standard output.
- MOTChallenge text: `frame,id,bb_left,bb_top,bb_width,bb_height,conf,x,y,z`, frames from 1, a
  MOT_BOX-pixel box centred on the point (a point has no extent), conf the score (-1 when predicted).
- An annotated video (.mp4, .mkv or .avi): each track's point with its id and a short trail,
  predicted points hollow.

With several videos, --save-csv, --save-mot and --save-video name folders: NAME.csv, NAME.txt
and NAME.mp4 per video.
"""

from __future__ import annotations

import contextlib
import os
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import cv2
import numpy as np
from tqdm import tqdm

from pinpoint.data.images import IMAGE_SUFFIXES
from pinpoint.data.videos import is_video_dataset
from pinpoint.errors import InputError
from pinpoint.outputs import STDOUT, Output, VideoSink, check_outputs, write_csv, write_mot
from pinpoint.points import Points
from pinpoint.sources import (VIDEO_SUFFIXES, FrameSource, VideoFile, media_in, open_source, prefetch,
                              protected_folders, whole_folder)
from pinpoint.tracking.tracker import PointTracker, TrackedPoint, TrackerSettings

TRAIL = 15  # frames of each track's past drawn behind it
PER_VIDEO_SUFFIX = {"--save-csv": ".csv", "--save-mot": ".txt", "--save-video": ".mp4"}  # files in an output folder


@dataclass(frozen=True)
class TrackedFrame:
    """One frame's tracked points: what `Detector.track` yields."""

    index: int  # frame number in its sequence, from 0
    name: str  # its output stem (VIDEO_000123 or the image's stem)
    sequence: str  # the video (or frame folder) it belongs to
    points: list[TrackedPoint]  # the tracker's: confirmed tracks only, gaps bridged
    detections: Points  # the detector's alone, at its threshold, as `detect` reports them
    image: np.ndarray  # the frame, grey


@dataclass
class TrackRun:
    """What track_source did: sequences, frames and confirmed tracks, and the readers' notes."""

    sequences: int = 0
    frames: int = 0
    tracks: int = 0
    notes: list[str] | None = None


def sequences_of(source: str | os.PathLike) -> list[FrameSource]:
    """The sequences behind a --source: each video of a folder of videos (or of DIR/videos), else
    the one sequence open_source makes of it (a video, a folder of frames or DIR/images, a glob, a
    list). A folder holding videos and images both is refused: which of them is the sequence to
    track cannot be guessed, and tracking the wrong one would be a silent wrong answer."""
    path = Path(source)
    folder = path / "videos" if is_video_dataset(path) else path
    if folder.is_dir() and not (folder / "images").is_dir():
        videos, images = media_in(folder)
        if videos and images:
            raise InputError(f"{folder}: holds {len(videos)} video(s) and {len(images)} image(s); track takes a folder "
                             f"of videos or a folder of frames, not both: move one kind out, or give one video, or a "
                             f"glob such as '{folder / '*.png'}'")
        if videos:
            return [VideoFile(video) for video in whole_folder(folder, VIDEO_SUFFIXES, "video")]
        if not images:
            raise InputError(f"{folder}: no video or image found (looked for {', '.join(VIDEO_SUFFIXES + IMAGE_SUFFIXES)})")
    return [open_source(source)]


def sequence_name(frames: FrameSource) -> str:
    return Path(frames.label).stem if isinstance(frames, VideoFile) else Path(frames.label.rstrip("/")).name or "frames"


def detect_and_track(detector, items: Iterable[tuple[Any, np.ndarray]], settings: TrackerSettings | None = None,
                     conf: float | None = None) -> Iterator[tuple[Any, Points, list[TrackedPoint]]]:
    """Detector, then tracker, over one sequence of (key, image): yields (key, the detector's points
    at its threshold, the tracked points) for each frame once final (tracker.py's lag).

    The detector is asked for candidates down to `settings.candidates` x the threshold: the
    tracker may confirm a faint target from them, while the detector's own points stay those at
    the threshold."""
    settings = settings or TrackerSettings()
    cut = detector.threshold if conf is None else conf
    tracker = PointTracker(settings, cut)
    pending: deque = deque()  # (key, the detector's points) of the frames not yet final
    for key, image in items:
        candidates = detector.predict(image, cut * settings.candidates)
        pending.append((key, candidates[candidates.score >= cut]))
        done = tracker.update(candidates)
        if done is not None:
            yield *pending.popleft(), done[1]
    for done in tracker.flush():
        yield *pending.popleft(), done[1]


def track_frames(detector, frames: FrameSource, settings: TrackerSettings | None = None,
                 conf: float | None = None) -> Iterator[TrackedFrame]:
    """Detect and track one sequence of frames of one size, yielding each frame once final."""
    name = sequence_name(frames)

    def items() -> Iterator[tuple[Any, np.ndarray]]:
        size = None
        for frame in prefetch(frames.frames(), depth=8, label=frames.label):
            if size is not None and frame.image.shape != size:
                raise InputError(f"{frame.origin}: frame is {frame.image.shape[1]}x{frame.image.shape[0]} but the "
                                 f"sequence's first is {size[1]}x{size[0]}; a sequence to track needs frames of one size")
            size = frame.image.shape
            yield (frame.index, frame.name, frame.image), frame.image

    for (index, stem, image), detections, points in detect_and_track(detector, items(), settings, conf):
        yield TrackedFrame(index, stem, name, points, detections, image)


def track_source(detector, source: str | os.PathLike, settings: TrackerSettings | None = None, *,
                 save_csv: str | os.PathLike | None = None, save_mot: str | os.PathLike | None = None,
                 save_video: str | os.PathLike | None = None, conf: float | None = None, progress: bool = True,
                 inputs: list[str | os.PathLike | None] = ()) -> TrackRun:
    """Track every sequence of `source` and write the outputs asked for (see the module docstring).
    Every output is checked before the first frame is read (outputs.check_outputs)."""
    sequences = sequences_of(source)
    several = len(sequences) > 1
    asked = {"--save-csv": save_csv, "--save-mot": save_mot, "--save-video": save_video}
    if several:
        on_stdout = [flag for flag, path in asked.items() if str(path) == STDOUT]
        if on_stdout:
            raise InputError(f"{on_stdout[0]} -: standard output takes the tracks of one sequence, and {source} holds "
                             f"{len(sequences)} videos; give a folder (one file per video)")
    check_outputs([Output(flag, path, folder=several, suffix=PER_VIDEO_SUFFIX[flag], stdout=flag != "--save-video")
                   for flag, path in asked.items()],
                  [source, *inputs], protected_folders([f for frames in sequences for f in frames.files], source))
    run = TrackRun(notes=[])
    for frames in sequences:
        name = sequence_name(frames)
        where = {flag: Path(path) / f"{name}{PER_VIDEO_SUFFIX[flag]}" if several else path
                 for flag, path in asked.items() if path}
        rows, mot = [], []
        trails: dict[int, deque] = defaultdict(lambda: deque(maxlen=TRAIL))
        ids = set()
        with contextlib.ExitStack() as stack:
            sink = stack.enter_context(VideoSink(where["--save-video"], frames.fps)) if save_video else None
            bar = stack.enter_context(tqdm(total=frames.total, desc=f"track {name}", unit="frame", disable=not progress))
            for tracked in track_frames(detector, frames, settings, conf):
                for p in tracked.points:
                    ids.add(p.track)
                    score = None if p.predicted else p.score
                    rows.append([tracked.index, p.track, f"{p.x:.4f}", f"{p.y:.4f}", "" if score is None else f"{score:.6f}"])
                    mot.append((tracked.index, p.track, p.x, p.y, score))
                if sink is not None:
                    sink.write(draw_tracks(tracked.image, tracked.points, trails), frames.label)
                run.frames += 1
                bar.update(1)
        if save_csv:
            write_csv(where["--save-csv"], ["frame", "track", "x", "y", "score"], rows)
        if save_mot:
            write_mot(where["--save-mot"], mot)
        run.sequences += 1
        run.tracks += len(ids)
        run.notes += frames.notes
    return run


def draw_tracks(grey: np.ndarray, points: list[TrackedPoint], trails: dict[int, deque]) -> np.ndarray:
    """A frame with each track's point, id and trail (its last TRAIL positions); predicted points hollow."""
    from pinpoint.viz import to_bgr8

    picture = to_bgr8(grey)
    for p in points:
        trails[p.track].append((p.x, p.y))
        colour = _colour(p.track)
        trail = np.array(trails[p.track], np.float64)
        if len(trail) > 1:
            cv2.polylines(picture, [np.round(trail * 16).astype(np.int32)], False, colour, 1, cv2.LINE_AA, 4)
        centre = (int(round(p.x * 16)), int(round(p.y * 16)))
        cv2.circle(picture, centre, 6 * 16, colour, 1, cv2.LINE_AA, 4)
        if not p.predicted:
            cv2.circle(picture, centre, 2 * 16, colour, -1, cv2.LINE_AA, 4)
        cv2.putText(picture, str(p.track), (int(p.x) + 8, int(p.y) - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv2.LINE_AA)
    return picture


def _colour(track: int) -> tuple[int, int, int]:
    hue = (track * 47) % 180  # ids far apart in hue, the same colour for a track all along
    bgr = cv2.cvtColor(np.uint8([[[hue, 220, 255]]]), cv2.COLOR_HSV2BGR)[0, 0]
    return int(bgr[0]), int(bgr[1]), int(bgr[2])
