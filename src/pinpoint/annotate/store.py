"""The dataset as the annotation page sees it: image names, label files and model suggestions.

Everything the page reads or writes goes through an AnnotationStore, which is where the
rules that keep the tool safe live: a name is accepted only if it is one of the images
actually found in DATA_DIR/images, and no file is read or written whose real location
(after following symbolic links) lies outside DATA_DIR.

Coordinates cross this boundary in pixels of the original image, in the project's pixel
convention (the centre of pixel (row i, column j) is x = j, y = i). Label files store x / W
and y / H, so a point can be anywhere in [0, W] x [0, H]: that is the range accepted here,
which lets every existing label file load and save back unchanged.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from pinpoint.data.images import list_images, read_image
from pinpoint.data.labels import read_labels, write_labels
from pinpoint.errors import InputError
from pinpoint.files import remove_stale_temporaries
from pinpoint.metrics import match_points
from pinpoint.points import Points

Predictor = Callable[[Path], Points]

MAX_POINTS = 10_000  # per image; far above any real frame, small enough to bound memory and file size
MAX_NAME_CHARS = 255  # the longest file name common file systems allow
MATCH_PX = 3.0  # review: a prediction within this many pixels of a target is a hit


class RequestError(Exception):
    """A request the store refuses; `status` is the HTTP status the server answers with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class VersionConflict(RequestError):
    """A save or delete sent with the version of labels/NAME.txt it was based on, which is no longer
    the file's (another tab or program changed it): refused, 412, so nothing is overwritten unseen."""

    def __init__(self, name: str, sent: str, current: str):
        super().__init__(412, f"labels/{name}.txt changed since this page read it (version {sent}, now {current}); "
                              "nothing was written")
        self.name = name


ABSENT = '"absent"'  # the version of a label file that does not exist


@dataclass(frozen=True)
class LabelState:
    """What labels/NAME.txt holds: `xy` in pixels, or None when there is no file yet."""

    xy: np.ndarray | None
    size: tuple[int, int]  # (H, W) of the image


class AnnotationStore:
    """Images and labels of one dataset folder, plus cached model predictions.

    Thread-safe: the HTTP server answers requests from several threads at once.
    """

    def __init__(self, data_dir: str | os.PathLike, predictor: Predictor | None = None, match_px: float = MATCH_PX,
                 threshold: float | None = None):
        given = Path(data_dir)
        if not given.is_dir():
            raise InputError(f"{given}: not a folder (expected a dataset folder with images/ inside)")
        self.root = given.resolve()
        self.images_dir = self.root / "images"
        self.labels_dir = self.root / "labels"
        if not self.images_dir.is_dir():
            raise InputError(f"{self.images_dir}: no images/ folder in the dataset")
        for folder in (self.images_dir, self.labels_dir):
            if _present(folder) and not self._inside(folder):
                raise InputError(f"{folder}: points outside {self.root}; the annotation tool only works inside the dataset folder")
        remove_stale_temporaries(self.labels_dir)  # label files half-written by a server that was killed
        self.predictor = predictor
        self.match_px = match_px
        # the model's own score cut: review and the disagreement filter count only points at or above
        # it, while suggestions may come from below it (the page's slider starts here)
        self.threshold = threshold
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()  # a version check and the write it guards are one step
        self._predict_lock = threading.Lock()  # one model call at a time: torch already uses every core
        self._images: dict[str, Path] = {}
        self._sizes: dict[str, tuple[int, int]] = {}
        self._predictions: dict[str, Points] = {}
        self.scan()

    # ----- names and paths -------------------------------------------------------------

    def scan(self) -> list[str]:
        """Re-read the images folder (images may be added while the tool runs); returns the names.

        Two images sharing a stem (a.png and a.jpg) would share one label file: at start that is
        the tool's one-line error, while it runs a 409 naming them (and the list is left as it was).
        """
        try:
            listed = list_images(self.images_dir)
        except InputError as exc:
            if not hasattr(self, "_images") or not self._images:
                raise
            raise RequestError(409, str(exc)) from None
        found: dict[str, Path] = {}
        for path in sorted(listed, key=natural_key):
            # A symbolic link out of the dataset is skipped, never served.
            if path.stem not in found and self._inside(path):
                found[path.stem] = path
        with self._lock:
            self._images = found
        return list(found)

    @property
    def names(self) -> list[str]:
        with self._lock:
            return list(self._images)

    def image_path(self, name: str) -> Path:
        """The image file called `name`; 400 for a malformed name, 404 for one not in the dataset."""
        check_name(name)
        with self._lock:
            path = self._images.get(name)
        if path is None:
            self.scan()
            with self._lock:
                path = self._images.get(name)
        if path is None:
            raise RequestError(404, f"no image named {name!r} in {self.images_dir}")
        if not self._inside(path):  # the file was swapped for a link after the scan
            raise RequestError(403, f"{path}: points outside the dataset folder")
        return path

    def label_path(self, name: str) -> Path:
        """labels/NAME.txt for an existing image, refused (403) if it would lead out of the dataset."""
        self.image_path(name)
        if _present(self.labels_dir) and not self._inside(self.labels_dir):
            raise RequestError(403, f"{self.labels_dir}: points outside the dataset folder")
        path = self.labels_dir / f"{name}.txt"
        if _present(path) and not self._inside(path):
            raise RequestError(403, f"{path}: a link to a file outside the dataset folder; refusing to follow it")
        return path

    def _inside(self, path: Path) -> bool:
        return path.resolve().is_relative_to(self.root)

    # ----- images ----------------------------------------------------------------------

    def read_image(self, name: str) -> np.ndarray:
        """The image as float32 grey in [0, 1]; 422 if the file cannot be decoded."""
        path = self.image_path(name)
        try:
            image = read_image(path)
        except InputError as exc:
            raise RequestError(422, str(exc)) from None
        with self._lock:
            self._sizes[name] = image.shape
        return image

    def image_size(self, name: str) -> tuple[int, int]:
        """(H, W), decoded once and remembered: saves need it to normalise coordinates."""
        with self._lock:
            size = self._sizes.get(name)
        return size if size is not None else self.read_image(name).shape

    # ----- labels ----------------------------------------------------------------------

    def read_points(self, name: str) -> LabelState:
        """The labelled points in pixels, or xy None when the image has no label file yet."""
        path = self.label_path(name)
        size = self.image_size(name)
        if not path.exists():
            return LabelState(None, size)
        try:
            labels = read_labels(path, truth=True)
        except InputError as exc:
            raise RequestError(422, str(exc)) from None
        height, width = size
        return LabelState(labels.xy * np.array([width, height], dtype=np.float64), size)

    def label_version(self, name: str) -> str:
        """labels/NAME.txt's version, as an HTTP entity tag: a hash of its bytes, or ABSENT."""
        path = self.label_path(name)
        try:
            content = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return ABSENT
        except OSError as exc:
            raise RequestError(422, f"{path}: cannot be read ({exc.strerror or exc})") from None
        return '"' + hashlib.sha256(content).hexdigest()[:20] + '"'

    def write_points(self, name: str, xy: np.ndarray, if_match: str | None = None) -> None:
        """Replace labels/NAME.txt atomically with `xy` (pixels); an empty array writes `0`. With
        `if_match`, only if the file is still at that version (else VersionConflict).

        Points that the file would store at one place (a Shift+double-click, or two clicks closer
        than its 6 decimals tell apart) are written once: ground truth holds a target once, and
        read back twice it would be refused (data/labels.py)."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        path = self.label_path(name)
        height, width = self.image_size(name)
        check_points(xy, (height, width))
        stored = np.round(xy / np.array([width, height], dtype=np.float64), 6)  # as format_labels writes them
        stored = stored[np.sort(np.unique(stored, axis=0, return_index=True)[1])]  # the first of each, in order
        with self._write_lock:
            self._check_version(name, if_match)
            try:
                write_labels(path, stored)
            except (OSError, InputError) as exc:  # a full disk, a folder that cannot be written: the page retries
                raise RequestError(503, f"{path}: cannot be written ({getattr(exc, 'strerror', None) or exc})") from None

    def delete_labels(self, name: str, if_match: str | None = None) -> None:
        """Remove labels/NAME.txt, so the image counts as not yet labelled (undo of a first point).
        With `if_match`, only if the file is still at that version (else VersionConflict)."""
        path = self.label_path(name)
        with self._write_lock:
            self._check_version(name, if_match)
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                raise RequestError(503, f"{path}: cannot be removed ({exc.strerror or exc})") from None

    def _check_version(self, name: str, if_match: str | None) -> None:
        if if_match is None or if_match.strip() == "*":
            return
        current = self.label_version(name)
        if if_match.strip() != current:
            raise VersionConflict(name, if_match.strip(), current)

    def label_summary(self, name: str) -> dict:
        """How far along an image is, for the list: status 'unlabelled' | 'labelled' | 'invalid'."""
        try:
            path = self.label_path(name)
        except RequestError as exc:
            return {"name": name, "status": "invalid", "count": None, "error": exc.message}
        if not path.exists():
            return {"name": name, "status": "unlabelled", "count": None}
        try:
            count = len(read_labels(path, truth=True))
        except InputError as exc:
            return {"name": name, "status": "invalid", "count": None, "error": str(exc)}
        return {"name": name, "status": "labelled", "count": count}

    # ----- model suggestions -----------------------------------------------------------

    @property
    def has_model(self) -> bool:
        return self.predictor is not None

    def predictions(self, name: str) -> Points:
        """The model's points for one image, computed once and kept for the session."""
        if self.predictor is None:
            raise RequestError(409, "no model loaded: start the tool with --weights to get suggestions")
        path = self.image_path(name)
        with self._lock:
            cached = self._predictions.get(name)
        if cached is not None:
            return cached
        with self._predict_lock:
            with self._lock:
                cached = self._predictions.get(name)
            if cached is not None:
                return cached
            try:
                points = self.predictor(path)
            except InputError as exc:
                raise RequestError(422, str(exc)) from None
        with self._lock:
            self._predictions[name] = points
        return points

    def cached_predictions(self, name: str) -> Points | None:
        with self._lock:
            return self._predictions.get(name)

    def review(self, name: str) -> dict:
        """Ground truth against predictions: which targets were found, which were missed, which
        predictions are false alarms (one-to-one matching within `match_px` pixels)."""
        labels = self.read_points(name)
        pred = self.predictions(name)
        if self.threshold is not None:
            pred = pred[pred.score >= self.threshold]
        gt_xy = labels.xy if labels.xy is not None else np.zeros((0, 2))
        match = match_points(pred.xy, pred.score, gt_xy, self.match_px)
        return {
            "name": name,
            "labelled": labels.xy is not None,
            "max_dist": self.match_px,
            "gt": [[float(x), float(y), bool(hit)] for (x, y), hit in zip(gt_xy, match.gt_matched)],
            "pred": [[float(x), float(y), float(s), bool(hit)] for (x, y), s, hit in zip(pred.xy, pred.score, match.pred_matched)],
            "hits": int(match.gt_matched.sum()),
            "misses": int((~match.gt_matched).sum()),
            "false_alarms": int((~match.pred_matched).sum()),
        }

    def set_model(self, predictor: Predictor, threshold: float | None) -> None:
        """Suggest from another model from now on (a finished "train on my labels" run)."""
        with self._predict_lock, self._lock:
            self.predictor, self.threshold = predictor, threshold
            self._predictions.clear()

    def doubt(self, name: str) -> float | None:
        """How unsure the model is about an image, from its cached predictions: 1 when a point
        scores right at the threshold, falling to 0 as every point's score moves a threshold's
        width away from it (or when there is no point); None when not predicted yet."""
        points = self.cached_predictions(name)
        if points is None:
            return None
        cut = self.threshold if self.threshold else 0.5
        return float(max((1 - min(abs(s - cut) / cut, 1.0) for s in points.score), default=0.0))

    def disagreement(self, name: str) -> int | None:
        """Misses plus false alarms of the cached predictions against the labels; None when that
        cannot be told yet (no labels, or not predicted)."""
        if self.cached_predictions(name) is None:
            return None
        try:
            review = self.review(name)
        except RequestError:
            return None
        return review["misses"] + review["false_alarms"] if review["labelled"] else None


def _present(path: Path) -> bool:
    """Exists, or is a link, even one whose target is missing (it would still lead somewhere)."""
    return path.exists() or path.is_symlink()


def natural_key(path: Path) -> list:
    """Sort key that puts frame_2 before frame_10, the order a person steps through with a / d."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part.lower()) for part in re.split(r"(\d+)", path.name)]


def check_name(name: str) -> None:
    """Refuse (400) anything that is not a plain file stem: separators, '..', NUL, empty."""
    if not name or len(name) > MAX_NAME_CHARS:
        raise RequestError(400, "image name must be 1 to 255 characters")
    if name in (".", "..") or any(c in name for c in "/\\\x00"):
        raise RequestError(400, f"invalid image name {name!r}: names are plain file stems, not paths")


def check_points(xy: np.ndarray, size: tuple[int, int]) -> None:
    """Refuse (400) too many points, non-finite values or positions outside [0, W] x [0, H]."""
    height, width = size
    if len(xy) > MAX_POINTS:
        raise RequestError(400, f"{len(xy)} points; at most {MAX_POINTS} per image")
    if not np.isfinite(xy).all():
        raise RequestError(400, "coordinates must be finite numbers")
    bad = (xy[:, 0] < 0) | (xy[:, 0] > width) | (xy[:, 1] < 0) | (xy[:, 1] > height)
    if bad.any():
        x, y = xy[int(np.argmax(bad))]
        raise RequestError(400, f"point ({x:g}, {y:g}) is outside the image: x must be in [0, {width}] and y in [0, {height}] pixels")


def parse_points(payload: object) -> np.ndarray:
    """The (N, 2) array out of a request body {"points": [[x, y], ...]} (pixels); 400 if malformed."""
    if not isinstance(payload, dict) or set(payload) != {"points"}:
        raise RequestError(400, 'body must be a JSON object {"points": [[x, y], ...]} (pixels)')
    points = payload["points"]
    if not isinstance(points, list):
        raise RequestError(400, '"points" must be a list of [x, y] pairs')
    if len(points) > MAX_POINTS:
        raise RequestError(400, f"{len(points)} points; at most {MAX_POINTS} per image")
    xy = np.zeros((len(points), 2), dtype=np.float64)
    for index, point in enumerate(points):
        if not (isinstance(point, list) and len(point) == 2 and all(_is_number(v) for v in point)):
            raise RequestError(400, f"points[{index}] must be [x, y] with two numbers")
        try:
            values = [float(v) for v in point]
        except OverflowError:  # an integer too large for a float
            values = [math.inf]
        if not all(math.isfinite(v) for v in values):
            raise RequestError(400, f"points[{index}]: coordinates must be finite numbers")
        xy[index] = values
    return xy


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
