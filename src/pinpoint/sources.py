"""Where frames come from: an image, a folder, a dataset folder, a glob, a list file or a video.

`open_source(text)` looks at what the user typed and returns a FrameSource; iterating it
yields Frames (index, name for the output files, grey float32 image). `prefetch` runs any
frame iterator in a background thread behind a bounded queue, so decoding the next frames
overlaps with the network working on the current ones, and a failure in that thread comes
back to the caller as one InputError naming the file, never as a traceback from the thread.
"""

from __future__ import annotations

import glob
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, TypeVar

import cv2
import numpy as np

from pinpoint.data.dataset import report_problems, split_images
from pinpoint.data.images import IMAGE_SUFFIXES, read_image, to_grey
from pinpoint.errors import InputError, first_line
from pinpoint.files import NOT_REGULAR, is_hidden, list_by_stem, not_regular_files, read_user_text
from pinpoint.outputs import Protected

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm")
LIST_SUFFIXES = (".txt",)
LABEL_SUFFIXES = (".txt", ".csv")  # an image's label file, a video's label CSV
GLOB_CHARACTERS = "*?["
DEFAULT_FPS = 25.0  # frame rate given to an annotated video made from still images
MAX_BAD_RUN = 25  # undecodable video frames in a row taken for damage; one more is the end of the stream
# FFmpeg (inside OpenCV) prints its own complaints about damaged files ("moov atom not found"); pinpoint
# says what went wrong in its own words, so FFmpeg is asked to be quiet (-8: AV_LOG_QUIET).
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

T = TypeVar("T")


@dataclass
class Frame:
    """One image to run the detector on, with the name its outputs take."""

    index: int  # position in the source, from 0
    name: str  # output stem: the image's stem, or VIDEO_000123 for frame 123 of VIDEO
    image: np.ndarray  # float32 grey (H, W) in [0, 1]
    origin: str  # the file it was read from (the image, or the video)


class FrameSource:
    """A finite sequence of frames; `total` is their number when known in advance (None otherwise).

    `notes` collects what a reader wants said once the frames are read without stopping the run:
    frames of a video that could not be decoded, a video shorter than its header says.
    """

    kind: str = "source"
    label: str = ""
    total: int | None = None
    fps: float = DEFAULT_FPS

    def __init__(self) -> None:
        self.notes: list[str] = []

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()

    def frames(self, skipped: list[str] | None = None) -> Iterator[Frame]:
        """The frames in order; with `skipped` a list, unreadable images are recorded there and left out."""
        raise NotImplementedError

    @property
    def files(self) -> list[Path]:
        """The files the frames are read from."""
        raise NotImplementedError


class ImageFiles(FrameSource):
    """Image files read one by one, named by their stems."""

    def __init__(self, paths: list[Path], kind: str, label: str):
        super().__init__()
        self.paths = paths
        self.kind = kind
        self.label = label
        self.total = len(paths)

    @property
    def files(self) -> list[Path]:
        return self.paths

    def frames(self, skipped: list[str] | None = None) -> Iterator[Frame]:
        for index, path in enumerate(self.paths):
            try:
                image = _read(path)
            except InputError as exc:
                if skipped is None:
                    raise
                skipped.append(str(exc))
                continue
            yield Frame(index, path.stem, image, str(path))


class VideoFile(FrameSource):
    """Frames of a video decoded with OpenCV, named VIDEO_000000, VIDEO_000001, ...

    A frame the decoder cannot read is left out and the frames after it are read on: the
    decoder picks up again at the next key frame. Frames keep their index in the video, so a
    frame's name and number still match its per-frame labels. At the end, `notes` says which
    frames were left out, and how many were read if that is fewer than the header announces.
    """

    kind = "video"

    def __init__(self, path: Path):
        super().__init__()
        self.path = path
        self.label = str(path)
        capture = self._open()
        try:
            count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            fps = float(capture.get(cv2.CAP_PROP_FPS))
        finally:
            capture.release()
        # Containers without an index report 0 or a negative count: the progress bar then has no total.
        self.total = count if count > 0 else None
        self.fps = fps if np.isfinite(fps) and fps > 0 else DEFAULT_FPS

    @property
    def files(self) -> list[Path]:
        return [self.path]

    def _open(self) -> cv2.VideoCapture:
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            capture.release()
            raise InputError(f"{self.path}: cannot open video (damaged, truncated, or a container or codec this OpenCV build lacks)")
        return capture

    def frames(self, skipped: list[str] | None = None) -> Iterator[Frame]:
        # OpenCV answers "no frame" alike for a damaged frame and for the end of the stream. Within the
        # header's frame count a failure is taken for a damaged frame, up to MAX_BAD_RUN in a row.
        capture = self._open()
        self.notes = []  # of this reading
        index = read = failed_in_a_row = 0
        bad: list[int] = []
        try:
            while True:
                ok, picture = capture.read()
                if ok:
                    yield Frame(index, f"{self.path.stem}_{index:06d}", to_grey(picture, f"{self.path}:frame {index}"), str(self.path))
                    read += 1
                    failed_in_a_row = 0
                elif self.total is not None and index < self.total and failed_in_a_row < MAX_BAD_RUN:
                    bad.append(index)
                    failed_in_a_row += 1
                else:
                    break
                index += 1
        except cv2.error as exc:
            raise InputError(f"{self.path}: cannot decode frame {index} ({first_line(exc)})") from None
        finally:
            capture.release()
        if read == 0:
            raise InputError(f"{self.path}: no frame could be decoded (empty video, or a codec this OpenCV build lacks)")
        bad = bad[:len(bad) - failed_in_a_row]  # failures up to the end are the end of the stream, not damaged frames
        if bad:
            shown = ", ".join(map(str, bad[:10])) + (", ..." if len(bad) > 10 else "")
            self.notes.append(f"{self.path}: {len(bad)} frame(s) could not be decoded and were left out (frame {shown})")
        if self.total is not None and read + len(bad) < self.total:
            self.notes.append(f"{self.path}: read {read} of the {self.total} frames its header announces; "
                              f"the video ends after frame {index - failed_in_a_row - 1} (truncated?)")


def open_source(source: str | os.PathLike, split: str | os.PathLike | None = None,
                skipped: list[str] | None = None) -> FrameSource:
    """The frames behind what the user typed as --source.

    - an image file: one frame;
    - a folder of images, or a dataset folder with images/ (optionally restricted to the stems of `split`);
    - a glob pattern such as 'frames/*.png' (quote it in the shell), images only, in sorted order;
    - a list file (.txt): one image path per line, relative paths taken from the list's folder,
      blank lines and lines starting with '#' skipped;
    - a video file (.mp4, .avi, .mkv, .mov, .m4v, .webm), decoded by OpenCV.
    With `skipped` a list, stems of `split` without an image are recorded there instead of raising.
    """
    text = os.fspath(source)
    path = Path(text)
    if split is not None and not path.is_dir():
        raise InputError(f"{split}: --split applies to a folder source, and {path} is not a folder")
    if path.is_dir():
        return ImageFiles(image_paths_in_folder(path, split, skipped), "folder", text)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in VIDEO_SUFFIXES:
            return VideoFile(path)
        if suffix in IMAGE_SUFFIXES:
            return ImageFiles([path], "image", text)
        if suffix in LIST_SUFFIXES:
            return ImageFiles(_unique_stems(read_list_file(path), text), "list", text)
        kinds = ", ".join(IMAGE_SUFFIXES + VIDEO_SUFFIXES + LIST_SUFFIXES)
        raise InputError(f"{path}: not a supported image, video or list file ({kinds})")
    if path.exists():
        raise InputError(f"{path}: not a regular file or a folder (a device or a pipe)")
    if any(c in text for c in GLOB_CHARACTERS):
        matches = sorted(Path(m) for m in glob.glob(text, recursive=True))
        paths = [m for m in matches if m.is_file() and m.suffix.lower() in IMAGE_SUFFIXES]
        if not paths:
            raise InputError(f"{text}: no image matches this pattern")
        return ImageFiles(_unique_stems(paths, text), "glob", text)
    raise InputError(f"{path}: no such file or folder")


def image_paths_in_folder(folder: Path, split: str | os.PathLike | None = None,
                          skipped: list[str] | None = None) -> list[Path]:
    """Images of a folder, or of DIR/images/ for a dataset folder, read whole (whole_folder); only the
    stems of `split` when given."""
    images = folder / "images" if (folder / "images").is_dir() else folder
    if split is not None:
        return split_images(images, split, skipped)
    paths = whole_folder(images, IMAGE_SUFFIXES, "image", skipped)
    if not paths:
        videos = media_in(images)[0]
        if videos:
            raise InputError(f"{images}: no images found; it holds {len(videos)} video(s): give one video as --source "
                             "(detect reads one at a time), or track the folder (pinpoint track --source)")
        raise InputError(f"{images}: no images found")
    return paths


def whole_folder(folder: Path, suffixes: tuple[str, ...], what: str, skipped: list[str] | None = None) -> list[Path]:
    """Every `what` of a folder read as a whole (files.list_by_stem), and an entry named like one that
    is not a regular file named as an error (with `skipped` a list, recorded there): leaving part of
    the input out without a word would be a silent wrong answer."""
    paths = list_by_stem(folder, suffixes, what)
    report_problems([f"{p}: {NOT_REGULAR.format(what=what)}" for p in not_regular_files(folder, suffixes)], skipped)
    return paths


def media_in(folder: Path) -> tuple[list[Path], list[Path]]:
    """The visible videos and images directly inside `folder` (by suffix, any case); other files
    (a README, a table of the videos) are neither."""
    try:
        entries = sorted(p for p in folder.iterdir() if not is_hidden(p))
    except OSError as exc:
        raise InputError(f"{folder}: cannot list the folder ({exc.strerror or exc})") from None
    return ([p for p in entries if p.suffix.lower() in VIDEO_SUFFIXES],
            [p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES])


def protected_folders(files: Iterable[Path], source: str | os.PathLike | None = None) -> list[Protected]:
    """The folders a run's input files are read from, and the labels/ beside a dataset's images/
    or videos/ (its ground truth): the places outputs.check_outputs keeps outputs out of. A folder
    is read as a whole when it is a dataset's or the `source` folder itself (outputs.Protected.listed)."""
    protected: dict[Path, Protected] = {}
    whole = Path(source).resolve() if source is not None and Path(source).is_dir() else None
    for folder in sorted({Path(f).parent for f in files}):
        dataset = folder.name in ("images", "videos")
        listed = dataset or folder.resolve() == whole
        protected[folder] = Protected(folder, IMAGE_SUFFIXES + VIDEO_SUFFIXES, "the images and videos read", listed)
        if dataset:
            labels = folder.parent / "labels"
            protected[labels] = Protected(labels, LABEL_SUFFIXES, "the ground-truth labels")
    return list(protected.values())


def read_list_file(path: Path) -> list[Path]:
    """Image paths listed one per line; each must exist (checked now, so a typo fails before any work)."""
    paths = []
    for number, line in enumerate(read_user_text(path, "list of image paths").splitlines(), start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        image = Path(entry) if Path(entry).is_absolute() else path.parent / entry
        if image.suffix.lower() not in IMAGE_SUFFIXES:
            raise InputError(f"{path}:{number}: {entry}: not a supported image ({', '.join(IMAGE_SUFFIXES)})")
        if not image.is_file():
            raise InputError(f"{path}:{number}: {entry}: no such image")
        paths.append(image)
    if not paths:
        raise InputError(f"{path}: the list holds no image paths")
    return paths


def _read(path: Path) -> np.ndarray:
    """read_image, with anything unexpected also turned into an InputError naming the file."""
    try:
        return read_image(path)
    except InputError:
        raise
    except (OSError, cv2.error, MemoryError, ValueError) as exc:
        raise InputError(f"{path}: cannot read image ({type(exc).__name__}: {first_line(exc)})") from None


def _unique_stems(paths: list[Path], label: str) -> list[Path]:
    # Outputs are named by stem: two images called a.png in different folders would overwrite each other's labels.
    seen: dict[str, Path] = {}
    for path in paths:
        if path.stem in seen:
            raise InputError(f"{label}: two images share the name {path.stem} ({seen[path.stem]}, {path}); their outputs would collide")
        seen[path.stem] = path
    return paths


@dataclass
class _Failure:
    error: BaseException


_DONE = object()


def prefetch(items: Iterable[T], depth: int = 8, label: str = "source") -> Iterator[T]:
    """Iterate `items` in a background thread, at most `depth` ahead of the consumer.

    OpenCV's decoders release the GIL, so reading overlaps with the network. An exception in the
    thread is handed over and raised here as one InputError (naming the file when the reader said
    which); stopping early (break, an error downstream, Ctrl-C) stops the thread at its next item.
    """
    handover: queue.Queue = queue.Queue(maxsize=max(depth, 1))
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                handover.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # every failure goes to the consumer; a thread must not die silently
            put(_Failure(exc))

    thread = threading.Thread(target=read, name=f"pinpoint-reader:{label}", daemon=True)
    thread.start()
    try:
        while True:
            item = handover.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                error = item.error
                if isinstance(error, InputError):
                    raise InputError(str(error)) from None
                if isinstance(error, Exception):
                    raise InputError(f"{label}: reading failed ({type(error).__name__}: {first_line(error)})") from None
                raise error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join(timeout=5.0)
