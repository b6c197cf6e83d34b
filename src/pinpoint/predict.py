"""image -> tensor -> model -> decode -> Points in the original image's pixels.

A Detector wraps a trained network with the preprocessing and decoding settings it was
trained with (they travel in the checkpoint), so `load("best.pt").predict("frame.png")`
needs nothing else.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pinpoint.codecs.heatmap import decode
from pinpoint.data import transforms as T
from pinpoint.data.images import read_image, to_grey
from pinpoint.errors import InputError
from pinpoint.models.registry import create_model
from pinpoint.points import Points

ImageLike = np.ndarray | str | os.PathLike


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks the first CUDA device when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {name}: CUDA is not available on this machine")
    return device


def inference_settings(model: nn.Module, img_size: int, threshold: float, top_k: int) -> dict[str, Any]:
    """What a checkpoint must carry, besides the weights, to turn an image into points."""
    return {"output": model.output, "stride": model.stride, "img_size": img_size,
            "threshold": threshold, "top_k": top_k, "nms_kernel": 3, "subpixel": True}


class Detector:
    """A trained model ready to find points: `Detector.load(path).predict(image)`."""

    def __init__(self, model: nn.Module, settings: dict[str, Any], device: str | torch.device = "cpu",
                 name: str = "model"):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.settings = dict(settings)
        self.name = name

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "auto") -> "Detector":
        """Load a checkpoint written by `pinpoint train` (best.pt or last.pt)."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: checkpoint not found")
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=False)
            model = create_model(ckpt["model_name"], **ckpt["model_args"])
            model.load_state_dict(ckpt["model"])
            settings = ckpt["inference"]
        except (KeyError, TypeError, RuntimeError, EOFError, OSError, ValueError) as exc:
            raise InputError(f"{path}: not a pinpoint checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
        return cls(model, settings, resolve_device(device), name=ckpt["model_name"])

    @property
    def threshold(self) -> float:
        return float(self.settings["threshold"])

    def prepare(self, grey: np.ndarray) -> np.ndarray:
        """Standardise, then resize to the training size or pad to the network's stride."""
        image = T.standardize(grey)
        size = self.settings["img_size"]
        if size:
            image, _ = T.resize(image, np.zeros((0, 2)), (size, size))
            return image
        return T.pad_to_multiple(image, self.settings["stride"])

    @torch.no_grad()
    def forward(self, grey: np.ndarray) -> torch.Tensor:
        """The raw network output for one grey image: heatmap (1, 1, h, w) or point (1, 2)."""
        tensor = torch.from_numpy(self.prepare(grey)).to(self.device)[None, None]
        return self.model(tensor)

    def predict(self, image: ImageLike, conf: float | None = None) -> Points:
        """Points in `image` (a path, or an array: grey, BGR or BGRA, 8/16-bit or float in [0, 1])."""
        return self.predict_with_heatmap(image, conf)[0]

    def predict_with_heatmap(self, image: ImageLike, conf: float | None = None) -> tuple[Points, np.ndarray | None]:
        """Points plus the heatmap resampled to the original image (None for the regression model)."""
        grey = read_image(image) if isinstance(image, (str, os.PathLike)) else to_grey(image)
        height, width = grey.shape
        threshold = self.threshold if conf is None else conf
        out = self.forward(grey)
        if self.settings["output"] == "point":
            size = self.settings["img_size"]
            frame = (size, size) if size else (height, width)
            xy = out[0].cpu().numpy().astype(np.float64) * np.array([frame[1], frame[0]])
            xy = T.map_resize(xy, frame, (height, width))
            return Points(np.clip(xy, 0, [width - 1, height - 1]), [1.0], (height, width)), None
        size = self.settings["img_size"]
        heatmap = out if size else out[:, :, :height, :width]
        (xy, scores), = decode(heatmap, self.settings["top_k"], threshold, self.settings["nms_kernel"], self.settings["subpixel"])
        hmap = heatmap[0, 0].cpu().numpy()
        if size:
            xy = T.map_resize(xy, (size, size), (height, width))
            hmap, _ = T.resize(hmap, np.zeros((0, 2)), (height, width))
        xy = np.clip(xy, 0, [width - 1, height - 1]) if len(xy) else xy
        return Points(xy, scores, (height, width)), hmap


def load(path: str | os.PathLike, device: str = "auto") -> Detector:
    """Load a trained detector from a checkpoint: `pinpoint.load("runs/x/best.pt").predict(image)`."""
    return Detector.load(path, device)
