"""Where a run's outputs go: checked in one place before any work, then written here.

Every verb that writes asks check_outputs first, with all of its outputs at once, so that a bad
output path fails before the first image is read, and never after an hour of work. It refuses:

- an output that is one of the run's inputs (the checkpoint, the source, a split file);
- an output folder that is a folder the inputs are read from, or the ground-truth labels/ beside
  them (Protected: the per-image or per-video files would land among the images, videos or
  labels), and an output file put among them with a suffix of theirs (a .csv among a video
  dataset's label CSVs, a video among the videos; beside one image or video named alone, only a
  file that exists: `track --source clip.mp4 --save-video tracked.mp4` is fine);
- two outputs of one run on one file, and a file where an output folder writes its files;
- `-` where standard output cannot take the output (a folder, a video), and two outputs on it;
- an existing path of the wrong kind: a folder where a file goes and the reverse, and anything
  that is not a regular file (a device, a pipe: the atomic rename would replace the device node
  itself, /dev/null included; `-` is how to ask for standard output).

Then it creates the folders and sweeps them of the temporary files killed runs left behind.

The writers live here too: tables (CSV) and MOTChallenge text to a file or to standard output,
and annotated videos (VideoSink), all written atomically (files.atomic_path).
"""

from __future__ import annotations

import csv
import io
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

from pinpoint.errors import InputError
from pinpoint.files import atomic_path, remove_stale_temporaries, write_text

STDOUT = "-"  # as an output path: standard output
VIDEO_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}  # fourcc per container
MOT_BOX = 10.0  # px: side of the box a point is written as in MOTChallenge files (a point has no extent)

PathLike = str | os.PathLike


@dataclass(frozen=True)
class Output:
    """One output a run was asked for."""

    flag: str  # the option that names it, for messages: "--save-csv"
    path: PathLike | None  # as given; None or "" when not asked for
    folder: bool = False  # a folder of per-item files NAME + suffix, rather than one file
    suffix: str = ""  # a folder's files' suffix (".txt")
    stdout: bool = False  # "-" is accepted: the output goes to standard output


@dataclass(frozen=True)
class Protected:
    """A folder whose files of `suffixes` a run reads (its images or videos) or must leave alone
    (the ground-truth labels beside them); `what` names them in messages.

    `listed`: the folder's files of those suffixes are an input as a whole (a dataset's images/,
    videos/ or labels/, a folder given as the source), so a new one there would join them; else
    (the folder of one image or video given by name) only an existing file is off limits."""

    folder: Path
    suffixes: tuple[str, ...]
    what: str
    listed: bool = True


def check_outputs(outputs: Sequence[Output], inputs: Iterable[PathLike | None] = (),
                  protected: Iterable[Protected] = ()) -> None:
    """Refuse, with one line naming the path and the option, any output that would lose a user's
    file or another output of the run (see the module docstring); then make the folders."""
    given = [o for o in outputs if o.path not in (None, "")]
    inputs, protected = [i for i in inputs if i], list(protected)
    on_stdout = [o for o in given if str(o.path) == STDOUT]
    for o in on_stdout:
        if not o.stdout:
            kind = "a folder of files" if o.folder else "a file of its own"
            raise InputError(f"{o.flag} -: {o.flag} needs {kind}; standard output (-) cannot take it, give a path")
    if len(on_stdout) > 1:
        raise InputError(f"{on_stdout[0].flag} - and {on_stdout[1].flag} -: both on standard output would mix them; "
                         "give one of them a file")
    paths = [o for o in given if str(o.path) != STDOUT]
    for o in paths:
        _refuse_inputs(Path(o.path), o.flag, inputs)
        _refuse_protected(o, protected)
    files = [o for o in paths if not o.folder]
    folders = [o for o in paths if o.folder]
    for i, a in enumerate(files):
        for b in files[i + 1:]:
            if _same_file(a.path, b.path):
                raise InputError(f"{b.path}: {a.flag} and {b.flag} name the same file, and one would replace the other; "
                                 "give each its own")
        for d in folders:
            if _same_file(Path(a.path).parent, d.path) and Path(a.path).suffix.lower() == d.suffix:
                raise InputError(f"{a.path}: {a.flag} is inside {d.flag}'s folder, where {d.flag} writes NAME{d.suffix} "
                                 f"files that could replace it; choose another path")
    folders_to_make = [(Path(o.path) if o.folder else Path(o.path).parent, o.flag) for o in paths]
    for o in paths:
        _check_kind(Path(o.path), o)
    for folder, flag in folders_to_make:
        _check_folder_path(folder, flag)
    for folder, flag in folders_to_make:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"{folder}: cannot create the folder for {flag} ({exc.strerror or exc})") from None
        remove_stale_temporaries(folder)


def prepare_output_file(path: PathLike, flag: str, inputs: Iterable[PathLike | None] = ()) -> Path:
    """check_outputs for a verb's one output file (export --out, bench --json): not an input, not
    a folder or a device, its folder made."""
    check_outputs([Output(flag, path)], inputs)
    return Path(path)


def prepare_output_folder(folder: PathLike, flag: str, inputs: Iterable[PathLike | None] = ()) -> Path:
    """check_outputs for a verb's one output folder (train --out, eval --report, synth OUT)."""
    check_outputs([Output(flag, folder, folder=True)], inputs)
    return Path(folder)


def write_csv(path: PathLike, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """A table with Python's csv module (names holding commas, quotes or line breaks read back
    exactly), atomically to `path`, or to standard output for "-"."""
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    write_text_or_stdout(path, table.getvalue())


def write_mot(path: PathLike, rows: Iterable[tuple[int, int, float, float, float | None]]) -> None:
    """MOTChallenge text from (frame from 0, track id, x, y, score or None for a point predicted over a
    gap): `frame,id,bb_left,bb_top,bb_width,bb_height,conf,x,y,z` with frames from 1 and a MOT_BOX
    box centred on the point, conf -1 for a predicted point."""
    half = MOT_BOX / 2
    write_text_or_stdout(path, "".join(
        f"{frame + 1},{track},{x - half:.3f},{y - half:.3f},{MOT_BOX:g},{MOT_BOX:g},"
        f"{-1 if score is None else round(score, 6)},-1,-1,-1\n" for frame, track, x, y, score in rows))


def write_text_or_stdout(path: PathLike, text: str) -> None:
    if str(path) == STDOUT:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        write_text(path, text)


class VideoSink:
    """An annotated video written atomically: frames go to a temporary file renamed on success."""

    def __init__(self, path: PathLike, fps: float, flag: str = "--save-video"):
        self.path = Path(path)
        self.fps = fps
        self.flag = flag
        fourcc = VIDEO_CODECS.get(self.path.suffix.lower())
        if fourcc is None:
            raise InputError(f"{self.path}: {flag} needs one of {', '.join(VIDEO_CODECS)}")
        self.fourcc = fourcc
        self.writer: cv2.VideoWriter | None = None
        self.size: tuple[int, int] | None = None

    def __enter__(self) -> "VideoSink":
        self._atomic = atomic_path(self.path)
        self.tmp = self._atomic.__enter__()
        return self

    def write(self, picture: np.ndarray, origin: str) -> None:
        height, width = picture.shape[:2]
        if self.writer is None:
            self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, (width, height))
            if not self.writer.isOpened():
                raise InputError(f"{self.path}: OpenCV cannot write {self.fourcc} video here")
            self.size = (height, width)
        elif (height, width) != self.size:
            raise InputError(f"{origin}: frame is {width}x{height} but the video {self.path} is {self.size[1]}x{self.size[0]};"
                             f" {self.flag} needs frames of one size")
        self.writer.write(picture)

    def __exit__(self, *exc_info) -> bool:
        if self.writer is not None:
            self.writer.release()
        return bool(self._atomic.__exit__(*exc_info))


def _same_file(a: PathLike, b: PathLike) -> bool:
    """True when two paths lead to the same file or folder (links and case-insensitive names included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def _refuse_inputs(path: Path, flag: str, inputs: Sequence[PathLike]) -> None:
    for given in inputs:
        if _same_file(path, given):
            raise InputError(f"{path}: {flag} would overwrite an input ({given}); choose another output path")


def _refuse_protected(o: Output, protected: Sequence[Protected]) -> None:
    path = Path(o.path)
    for p in protected:
        if o.folder and _same_file(path, p.folder):
            raise InputError(f"{path}: {o.flag} would write among the inputs: its files would land among {p.what}; "
                             "choose another folder")
        if (not o.folder and _same_file(path.parent, p.folder) and path.suffix.lower() in p.suffixes
                and (p.listed or path.exists())):
            raise InputError(f"{path}: {o.flag} would write among the inputs: a {path.suffix} file among {p.what} "
                             f"({p.folder}); choose another path")


def _check_kind(path: Path, o: Output) -> None:
    """A folder where a file goes (or the reverse), or a path that is neither, refused."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # nothing there yet (or a broken link, which the rename replaces)
    if o.folder and not stat.S_ISDIR(mode):
        raise InputError(f"{path}: {o.flag} must be a folder, and a file of that name exists")
    if not o.folder and stat.S_ISDIR(mode):
        raise InputError(f"{path}: {o.flag} must be a file, and a folder of that name exists")
    if not o.folder and not stat.S_ISREG(mode):
        raise InputError(f"{path}: {o.flag} is not a regular file (a device or a pipe), which writing would replace; "
                         "give a file path, or - for standard output where the option takes it")


def _check_folder_path(folder: Path, flag: str) -> None:
    """The nearest existing path at or above `folder` must be a folder: a file there would stop its creation."""
    for above in (folder, *folder.parents):
        if above.exists() or above.is_symlink():
            if not above.is_dir():
                raise InputError(f"{above}: a file where {flag} needs a folder")
            return
