"""Detection over many images: pick a detector, walk a source, write labels and pictures."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np
from tqdm import tqdm

from pinpoint.classical import CLASSICAL_METHODS, detect_classical
from pinpoint.data.dataset import read_split
from pinpoint.data.images import IMAGE_SUFFIXES, find_image, list_images, read_image, to_grey
from pinpoint.errors import InputError
from pinpoint.points import Points
from pinpoint.predict import Detector, ImageLike


class ClassicalDetector:
    """A training-free method (top-hat, local contrast) behind the same interface as Detector."""

    def __init__(self, method: str):
        if method not in CLASSICAL_METHODS:
            raise InputError(f"--method {method}: unknown method; choose one of {', '.join(sorted(CLASSICAL_METHODS))}")
        self.name = method
        self.threshold = 0.0

    def predict(self, image: ImageLike, conf: float | None = None) -> Points:
        return self.predict_with_heatmap(image, conf)[0]

    def predict_with_heatmap(self, image: ImageLike, conf: float | None = None) -> tuple[Points, None]:
        grey = read_image(image) if isinstance(image, (str, os.PathLike)) else to_grey(image)
        points = detect_classical(grey, self.name)
        return (points[points.score >= conf] if conf is not None else points), None


def make_detector(weights: str | None, method: str | None, device: str = "auto") -> Detector | ClassicalDetector:
    """A checkpoint's Detector, or a classical method by name."""
    if weights:
        return Detector.load(weights, device)
    if method:
        return ClassicalDetector(method)
    raise InputError("give --weights CHECKPOINT or --method NAME")


def iter_source(source: str | os.PathLike, split: str | os.PathLike | None = None) -> Iterator[Path]:
    """Image paths of a source: one image, a folder of images, or a dataset folder with images/."""
    source = Path(source)
    if source.is_file():
        if source.suffix.lower() not in IMAGE_SUFFIXES:
            raise InputError(f"{source}: not a supported image ({', '.join(IMAGE_SUFFIXES)})")
        yield source
        return
    if not source.exists():
        raise InputError(f"{source}: no such file or folder")
    folder = source / "images" if (source / "images").is_dir() else source
    if split is not None:
        for stem in read_split(split):
            yield find_image(folder, stem)
        return
    paths = list_images(folder)
    if not paths:
        raise InputError(f"{folder}: no images found")
    yield from paths


def detect_folder(detector: Detector | ClassicalDetector, source: str | os.PathLike, split: str | os.PathLike | None = None,
                  save_txt: str | os.PathLike | None = None, save_vis: str | os.PathLike | None = None,
                  conf: float | None = None, progress: bool = True) -> tuple[int, int]:
    """Run `detector` over a source; returns (images, points). Labels and pictures are written per image."""
    from pinpoint.viz import annotate, save_image

    paths = list(iter_source(source, split))
    count = total = 0
    for path in tqdm(paths, desc="detect", unit="img", disable=not progress):
        grey = read_image(path)
        points, heatmap = detector.predict_with_heatmap(grey, conf)
        if save_txt:
            points.save(Path(save_txt) / f"{path.stem}.txt")
        if save_vis:
            save_image(Path(save_vis) / f"{path.stem}.png", annotate(grey, points, heatmap))
        count += 1
        total += len(points)
    return count, total
