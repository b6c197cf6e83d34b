"""image -> tensor -> model -> decode -> Points in the original image's pixels.

A Detector wraps a trained network with the preprocessing and decoding settings it was
trained with (they travel in the checkpoint), so `load("best.pt").predict("frame.png")`
needs nothing else. The network runs behind a backend: PyTorch for a checkpoint, onnxruntime
for an .onnx file written by `pinpoint export` (pinpoint.backends); preparation and decoding
are the same code for both, so both give the same points.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from pinpoint.backends import Backend, OnnxBackend, TorchBackend
from pinpoint.checkpoints import PRETRAINED_ONNX, PRETRAINED_PATH, load_checkpoint, weights_path
from pinpoint.codecs.heatmap import decode
from pinpoint.codecs.snap import snap_and_merge
from pinpoint.config import COUNT, PRETRAINED, SCORE, check_value
from pinpoint.data import transforms as T
from pinpoint.data.images import read_image, to_grey
from pinpoint.errors import InputError, first_line
from pinpoint.files import check_regular_file
from pinpoint.models.registry import create_model
from pinpoint.points import Points

if TYPE_CHECKING:
    from pinpoint.tracking.runner import TrackedFrame
    from pinpoint.tracking import TrackerSettings

ImageLike = np.ndarray | str | os.PathLike


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks the first CUDA device when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"--device {name}: not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {name}: CUDA is not available on this machine")
    return device


# A view of an image for test-time averaging: (quarter turns counter-clockwise, mirrored left-right before turning).
View = tuple[int, bool]
MIRRORS: list[View] = [(0, False), (0, True), (2, True), (2, False)]  # as is, left-right, up-down, both
ALL_VIEWS: list[View] = [(turns, mirrored) for turns in range(4) for mirrored in (False, True)]  # the square's 8 symmetries


def tta_views(flip: bool, vflip: bool, rot90: bool) -> list[View]:
    """The views whose heatmaps test-time averaging takes: the symmetries training augmented with.

    Why those: a network trained on quarter turns and mirrors of its crops has learned each of them
    as well as the others, so its heatmaps of the 8 views differ only by its own errors, which
    averaging cancels (on NUAA-SIRST: AP +0.014 and F1 +0.009 over 17 runs; docs/research-log.md). A view it was
    never trained on (a scene upside down, for a model kept upright) would add errors instead.
    """
    if rot90:
        return ALL_VIEWS if flip or vflip else [(turns, False) for turns in range(4)]
    return [view for view, used in zip(MIRRORS, (True, flip, vflip, flip and vflip)) if used]


def inference_settings(model: nn.Module, img_size: int, threshold: float, top_k: int, tta: bool = False,
                       nms_kernel: int = 3, snap: bool = False, views: Sequence[View] = ALL_VIEWS) -> dict[str, Any]:
    """What a checkpoint must carry, besides the weights, to turn an image into points.
    `views` are the ones test-time averaging uses (tta_views), stored even when `tta` is off so
    that detect --tta can switch it on later."""
    return {"output": model.output, "stride": model.stride, "img_size": img_size, "threshold": threshold,
            "top_k": top_k, "nms_kernel": nms_kernel, "subpixel": True, "tta": tta,
            "tta_views": [list(view) for view in views], "snap": snap}


class Detector:
    """A trained model ready to find points: `Detector.load(path).predict(image)`."""

    def __init__(self, model: nn.Module | None, settings: dict[str, Any], device: str | torch.device = "cpu",
                 name: str = "model", backend: Backend | None = None):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval() if model is not None else None
        if backend is None and self.model is None:
            raise ValueError("Detector needs a model or a backend")
        self.backend = backend if backend is not None else TorchBackend(self.model, self.device)
        self.settings = dict(settings)
        self.name = name

    @classmethod
    def load(cls, path: str | os.PathLike | None = PRETRAINED, device: str = "auto", threads: int | None = None,
             fast: bool = False) -> "Detector":
        """Load a checkpoint written by `pinpoint train` (best.pt or last.pt), an .onnx from
        `pinpoint export`, or with no path (or "pretrained") the model shipped with pinpoint.

        `fast` runs the shipped model's ONNX export in onnxruntime where that is installed and the
        device is the CPU (detect, track, eval and `pinpoint.load()` ask for it; export, bench and
        train need the PyTorch network itself).

        `threads` sets the intra-op CPU threads of the whole process's PyTorch (torch.set_num_threads:
        the network of a checkpoint, and the peak decoding of both kinds) and of the onnxruntime
        session. None keeps each library's default, one per core; on a box whose cores are busy with
        other work, 1 can be several times faster (a parallel op waits for its slowest thread).
        """
        path = weights_path(path)
        if threads:
            torch.set_num_threads(threads)
        if fast and path == PRETRAINED_PATH and resolve_device(device).type == "cpu" and onnx_runtime_available():
            path = PRETRAINED_ONNX  # the shipped model's export, where it runs fastest
        if path.suffix.lower() == ".onnx":
            check_regular_file(path, "ONNX model")

            backend = OnnxBackend(path, threads=threads, device=device)
            return cls(None, backend.settings, "cpu", name=backend.model_name, backend=backend)
        ckpt = load_checkpoint(path)
        try:
            model = create_model(ckpt["model_name"], **ckpt["model_args"])
        except (TypeError, ValueError) as exc:  # a removed model argument is named by create_model
            raise InputError(f"{path}: {first_line(exc)}") from None
        try:
            model.load_state_dict(ckpt["model"])
        except RuntimeError as exc:
            raise InputError(f"{path}: its weights do not fit the {ckpt['model_name']} network ({first_line(exc)})") from None
        return cls(model, ckpt["inference"], resolve_device(device), name=ckpt["model_name"])

    def track(self, source: str | os.PathLike, settings: TrackerSettings | None = None,
              conf: float | None = None) -> Iterator[TrackedFrame]:
        """Detect and track every frame of a video, a folder of frames or a folder of videos
        (each on its own): yields each frame's TrackedFrame, its points with their track ids."""
        from pinpoint.tracking.runner import sequences_of, track_frames

        for frames in sequences_of(source):
            yield from track_frames(self, frames, settings, conf)

    @property
    def threshold(self) -> float:
        """The score cut: with `tta` on, the one training cut for averaged heatmaps
        (`tta_threshold`, in checkpoints trained since it exists), else the plain one."""
        averaged = self.settings.get("tta") and "tta_threshold" in self.settings
        return float(self.settings["tta_threshold" if averaged else "threshold"])

    def prepare(self, grey: np.ndarray) -> np.ndarray:
        """Standardise, then resize to the training size or pad to the network's stride."""
        image = T.standardize(grey)
        size = self.settings["img_size"]
        if size:
            image, _ = T.resize(image, np.zeros((0, 2)), (size, size))
            return image
        return T.pad_to_multiple(image, self.settings["stride"])

    def forward(self, grey: np.ndarray) -> torch.Tensor:
        """The raw network output for one grey image: heatmap (1, 1, h, w) or point (1, 2)."""
        return self.run(self.prepare(grey)[None, None])

    def run(self, batch: np.ndarray) -> torch.Tensor:
        """The network on a prepared batch; with the `tta` setting, heatmaps are averaged over the
        views in `tta_views` (tta_views(); checkpoints from before it: the four mirror images),
        each turned back into the image's frame. Each view costs one more network pass."""
        if not self.settings.get("tta") or self.settings["output"] != "heatmap":
            return self.backend(batch)
        return self.run_views(batch)[1]

    def run_views(self, batch: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """The plain heatmap and the heatmap averaged over the `tta_views`, from one pass per view
        (the plain view is one of them): both thresholds are cut from it at the cost of the average alone."""
        views = [tuple(view) for view in self.settings.get("tta_views", MIRRORS)]
        total: torch.Tensor | float = 0.0
        plain = None
        for turns, mirrored in views:
            view = np.rot90(batch[..., ::-1] if mirrored else batch, turns, axes=(2, 3))
            heatmap = torch.rot90(self.backend(np.ascontiguousarray(view)), -turns, dims=(2, 3))
            heatmap = torch.flip(heatmap, dims=(3,)) if mirrored else heatmap
            plain = heatmap if (turns, mirrored) == (0, False) else plain
            total = total + heatmap
        return (plain if plain is not None else self.backend(batch)), total / len(views)

    @property
    def max_points(self) -> int:
        """The cap of points per image (the checkpoint's `top_k`, 100 unless trained otherwise): past it
        only the best are kept, and the result says so (Points.capped)."""
        return int(self.settings["top_k"])

    def predict(self, image: ImageLike, conf: float | None = None, max_points: int | None = None) -> Points:
        """Points in `image` (a path, or an array: grey, BGR or BGRA, 8/16-bit or float in [0, 1]).
        `conf` and `max_points` replace the checkpoint's threshold and cap for this call."""
        return self.predict_with_heatmap(image, conf, max_points)[0]

    def predict_with_heatmap(self, image: ImageLike, conf: float | None = None,
                             max_points: int | None = None) -> tuple[Points, np.ndarray | None]:
        """Points plus the heatmap resampled to the original image (None for the regression model)."""
        return self.predict_batch_with_heatmap([image], conf, max_points=max_points)[0]

    def predict_batch(self, images: Sequence[ImageLike], conf: float | None = None,
                      max_points: int | None = None) -> list[Points]:
        """Points in each of `images`, with one network call per image size (frames of a stream share one)."""
        return [points for points, _ in self.predict_batch_with_heatmap(images, conf, heatmaps=False, max_points=max_points)]

    def predict_batch_with_heatmap(self, images: Sequence[ImageLike], conf: float | None = None,
                                   heatmaps: bool = True, max_points: int | None = None) -> list[tuple[Points, np.ndarray | None]]:
        """(points, heatmap in the image's frame or None) per image; `heatmaps=False` skips resampling them.

        Images are grouped by size; each group is standardised per image, stacked, run through
        the network once and decoded as one batch.
        """
        check_overrides(conf, max_points)
        greys = [read_image(image) if isinstance(image, (str, os.PathLike)) else to_grey(image) for image in images]
        threshold = self.threshold if conf is None else conf
        groups: dict[tuple[int, int], list[int]] = {}
        for i, grey in enumerate(greys):
            groups.setdefault(grey.shape, []).append(i)
        results: list[tuple[Points, np.ndarray | None]] = [None] * len(greys)  # type: ignore[list-item]
        for shape, members in groups.items():
            batch = np.stack([self.prepare(greys[i]) for i in members])[:, None]
            decoded = self.decode_output(self.run(batch), shape, threshold, heatmaps, [greys[i] for i in members], max_points)
            for i, result in zip(members, decoded):
                results[i] = result
        return results

    def predict_plain_and_averaged(self, image: ImageLike, conf: float) -> tuple[Points, Points]:
        """Points of the plain heatmap and of the heatmap averaged over the model's views (`--tta`),
        both down to `conf`, from one pass per view (run_views): what cutting both thresholds needs."""
        check_overrides(conf, None)
        grey = read_image(image) if isinstance(image, (str, os.PathLike)) else to_grey(image)
        plain, averaged = self.run_views(self.prepare(grey)[None, None])
        return tuple(self.decode_output(heatmap, grey.shape, conf, False, [grey])[0][0]  # type: ignore[return-value]
                     for heatmap in (plain, averaged))

    def decode_output(self, out: torch.Tensor, image_size: tuple[int, int], threshold: float, heatmaps: bool,
                      greys: Sequence[np.ndarray] | None = None,
                      max_points: int | None = None) -> list[tuple[Points, np.ndarray | None]]:
        """Network output for a batch of images of `image_size` -> points in the original pixels.

        With the `snap` setting and the images (`greys`, in any affine intensity scale), each point
        moves to the centroid of its bright blob (codecs/snap.py) and points that meet are merged.
        """
        height, width = image_size
        size = self.settings["img_size"]
        frame = (size, size) if size else (height, width)
        if self.settings["output"] == "point":
            xy = out.detach().cpu().numpy().astype(np.float64) * np.array([frame[1], frame[0]])
            xy = np.clip(T.map_resize(xy, frame, (height, width)), 0, [width - 1, height - 1])
            return [(Points(point, [1.0], (height, width)), None) for point in xy]
        heatmap = out if size else out[:, :, :height, :width]
        cap = self.max_points if max_points is None else max_points
        decoded = decode(heatmap, cap, threshold, self.settings["nms_kernel"], self.settings["subpixel"])
        maps = heatmap[:, 0].detach().cpu().numpy() if heatmaps else None
        results = []
        for b, (xy, scores, capped) in enumerate(decoded):
            hmap = None
            if size:
                xy = T.map_resize(xy, (size, size), (height, width))
                if heatmaps:
                    hmap, _ = T.resize(maps[b], np.zeros((0, 2)), (height, width))
            elif heatmaps:
                hmap = maps[b]
            xy = np.clip(xy, 0, [width - 1, height - 1]) if len(xy) else xy
            if self.settings.get("snap") and greys is not None:
                xy, scores = snap_and_merge(greys[b], xy, scores, self.settings["nms_kernel"] // 2)
            results.append((Points(xy, scores, (height, width), capped), hmap))
        return results


def check_overrides(conf: float | None, max_points: int | None) -> None:
    """A threshold or cap given to a predict call, checked as the command line checks --conf and
    --max-points: a NaN threshold would silently give no points at all."""
    if conf is not None:
        check_value("conf", conf, SCORE)
    if max_points is not None:
        check_value("max_points", max_points, COUNT)


def onnx_runtime_available() -> bool:
    """The shipped model's export is there and onnxruntime can run it."""
    import importlib.util

    return PRETRAINED_ONNX.is_file() and importlib.util.find_spec("onnxruntime") is not None


def load(path: str | os.PathLike | None = PRETRAINED, device: str = "auto", threads: int | None = None) -> Detector:
    """Load a trained detector from a checkpoint or an exported .onnx: `pinpoint.load("runs/x/best.pt").predict(image)`;
    `pinpoint.load()` gives the model shipped with pinpoint (docs/model-card.md)."""
    return Detector.load(path, device, threads, fast=True)
