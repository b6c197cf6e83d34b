"""Detection over many images: pick a detector, stream a source, write labels, tables, pictures and video.

Frames are decoded in a background thread (pinpoint.sources.prefetch), grouped into batches of
one size and sent through the network together; the outputs of each frame are written as it
comes back, and the per-point table (CSV / JSON) once at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
from tqdm import tqdm

from pinpoint.classical import CLASSICAL_METHODS, detect_classical
from pinpoint.data.images import read_image, to_grey
from pinpoint.errors import InputError
from pinpoint.outputs import Output, VideoSink, check_outputs, write_csv, write_text_or_stdout
from pinpoint.points import Points
from pinpoint.predict import Detector, ImageLike, check_overrides
from pinpoint.sources import Frame, open_source, prefetch, protected_folders


class ClassicalDetector:
    """A training-free method (top-hat, local contrast) behind the same interface as Detector.

    `max_points` caps the points of an image (the best kept, the result marked capped); None keeps
    every region the method finds, as the benchmark's baseline rows do.
    """

    def __init__(self, method: str, max_points: int | None = None):
        if method not in CLASSICAL_METHODS:
            raise InputError(f"--method {method}: unknown method; choose one of {', '.join(sorted(CLASSICAL_METHODS))}")
        self.name = method
        self.threshold = 0.0
        self.max_points = max_points

    def predict(self, image: ImageLike, conf: float | None = None, max_points: int | None = None) -> Points:
        return self.predict_with_heatmap(image, conf, max_points)[0]

    def predict_with_heatmap(self, image: ImageLike, conf: float | None = None,
                             max_points: int | None = None) -> tuple[Points, None]:
        check_overrides(conf, max_points)
        grey = read_image(image) if isinstance(image, (str, os.PathLike)) else to_grey(image)
        points = detect_classical(grey, self.name)
        points = points[points.score >= conf] if conf is not None else points
        cap = self.max_points if max_points is None else max_points
        if cap is not None and len(points) > cap:
            points = points[:cap]  # best first already
            points.capped = True
        return points, None

    def predict_batch_with_heatmap(self, images: Sequence[ImageLike], conf: float | None = None,
                                   heatmaps: bool = True, max_points: int | None = None) -> list[tuple[Points, None]]:
        """One image at a time: the classical filters have no batch form worth having."""
        return [self.predict_with_heatmap(image, conf, max_points) for image in images]


def make_detector(weights: str | None, method: str | None, device: str = "auto", threads: int | None = None,
                  tta: bool | None = None, snap: bool | None = None,
                  max_points: int | None = None) -> Detector | ClassicalDetector:
    """A checkpoint's (or an exported .onnx's) Detector, a classical method by name, or with
    neither the pretrained model's Detector.

    `tta` switches the averaging over turned and mirrored views on or off, `snap` the move of
    points onto their blobs' centroids and `max_points` sets the cap of points per image; None
    keeps the checkpoint's own setting (its cap is 100 unless trained otherwise).
    """
    if method and not weights:
        return ClassicalDetector(method, max_points)
    detector = Detector.load(weights, device, threads, fast=True)
    for key, value in (("tta", tta), ("snap", snap), ("top_k", max_points)):
        if value is not None:
            detector.settings[key] = value
    return detector


def tta_note(detector: Detector | ClassicalDetector, conf: float | None = None) -> list[str]:
    """The warning for --tta on a model whose run cut no threshold for averaged heatmaps (trained
    without --tta): its plain threshold is used, and averaging lowers the peaks, so it cuts too high.
    Nothing to say when the threshold is given (`conf`)."""
    settings = getattr(detector, "settings", {})
    if conf is not None or not (settings.get("tta") and settings.get("output") == "heatmap"
                                and "tta_threshold" not in settings):
        return []
    return [f"--tta: this model's run cut no threshold for averaged heatmaps (it was not trained with --tta), so its "
            f"plain one ({settings['threshold']:.3f}) is used, which cuts them too high; give --conf, or train with --tta"]


@dataclass
class DetectionRun:
    """What detect_folder did: frames and points, the frames whose points reached the cap, and
    what the source had to say at the end (video frames that could not be decoded, a short video)."""

    frames: int
    points: int
    capped: list[str]
    notes: list[str]


def detect_folder(detector: Detector | ClassicalDetector, source: str | os.PathLike, split: str | os.PathLike | None = None,
                  save_txt: str | os.PathLike | None = None, save_vis: str | os.PathLike | None = None,
                  conf: float | None = None, progress: bool = True, *, save_csv: str | os.PathLike | None = None,
                  save_json: str | os.PathLike | None = None, save_video: str | os.PathLike | None = None,
                  batch: int | None = None, skipped: list[str] | None = None,
                  inputs: Sequence[str | os.PathLike] = ()) -> DetectionRun:
    """Run `detector` over any source (see pinpoint.sources.open_source).

    Per frame: a label file in `save_txt` and a picture in `save_vis` named after the frame,
    and a frame of the annotated video `save_video`. At the end: every point as a row of the
    CSV `save_csv` (frame, name, x, y in pixels, score; "-" writes it to standard output) and
    every frame in the JSON `save_json` ("-" for either: standard output).
    Every output is checked before the first frame is read (outputs.check_outputs); `inputs` names
    other files the run reads (the checkpoint), which no output may replace.
    With `skipped` a list, images that cannot be read are recorded there and left out instead of stopping the run.
    `batch`: frames per network call; None = 8 on a GPU, 1 on the CPU, where bigger batches measured
    slower here (PyTorch and onnxruntime alike: the working set of one frame already fills the caches).
    """
    if batch is None:
        device = getattr(detector, "device", None)
        batch = 8 if device is not None and device.type == "cuda" else 1
    frames = open_source(source, split, skipped)
    check_outputs([Output("--save-txt", save_txt, folder=True, suffix=".txt"),
                   Output("--save-vis", save_vis, folder=True, suffix=".png"),
                   Output("--save-csv", save_csv, stdout=True), Output("--save-json", save_json, stdout=True),
                   Output("--save-video", save_video)],
                  [source, split, *inputs], protected_folders(frames.files, source))
    drawing = bool(save_vis or save_video)
    rows: list[list] = []
    records: list[dict] = []
    capped: list[str] = []
    count = total = 0
    with contextlib.ExitStack() as stack:
        video = stack.enter_context(VideoSink(save_video, frames.fps)) if save_video else None
        bar = stack.enter_context(tqdm(total=frames.total, desc=f"detect {frames.kind}", unit="img", disable=not progress))
        for group in batches(prefetch(frames.frames(skipped), depth=max(2 * batch, 4), label=frames.label), batch):
            results = detector.predict_batch_with_heatmap([frame.image for frame in group], conf, heatmaps=drawing)
            for frame, (points, heatmap) in zip(group, results):
                if save_txt:
                    points.save(Path(save_txt) / f"{frame.name}.txt")
                if drawing:
                    _draw(frame, points, heatmap, save_vis, video)
                if save_csv:
                    rows.extend([frame.index, frame.name, f"{x:.4f}", f"{y:.4f}", f"{score:.6f}"]
                                for (x, y), score in zip(points.xy, points.score))
                if save_json:
                    records.append(_frame_record(frame, points))
                if points.capped:
                    capped.append(frame.name)
                count += 1
                total += len(points)
            bar.update(len(group))
    if save_csv:
        write_csv(save_csv, ["frame", "name", "x", "y", "score"], rows)
    if save_json:
        document = {"source": str(source), "kind": frames.kind, "fps": frames.fps, "coordinates": "pixels, x = column, y = row",
                    "frames": records}
        write_text_or_stdout(save_json, json.dumps(document, indent=1) + "\n")
    return DetectionRun(count, total, capped, frames.notes)


def batches(frames: Iterable[Frame], size: int) -> Iterator[list[Frame]]:
    """Consecutive frames in groups of up to `size`; a change of image size starts a new group (one tensor per group)."""
    group: list[Frame] = []
    for frame in frames:
        if group and (len(group) >= size or frame.image.shape != group[0].image.shape):
            yield group
            group = []
        group.append(frame)
    if group:
        yield group


def _frame_record(frame: Frame, points: Points) -> dict:
    height, width = points.image_size
    return {"frame": frame.index, "name": frame.name, "height": height, "width": width, "capped": points.capped,
            "points": [{"x": round(float(x), 4), "y": round(float(y), 4), "score": round(float(s), 6)}
                       for (x, y), s in zip(points.xy, points.score)]}


def _draw(frame: Frame, points: Points, heatmap: np.ndarray | None, save_vis: str | os.PathLike | None,
          video: VideoSink | None) -> None:
    from pinpoint.viz import annotate, save_image

    picture = annotate(frame.image, points, heatmap)
    if save_vis:
        save_image(Path(save_vis) / f"{frame.name}.png", picture)
    if video is not None:
        video.write(picture, frame.origin)
