"""A folder of images with point labels, as samples in memory and as training tensors.

Layout: DIR/images/NAME.{png,jpg,bmp,tif} beside DIR/labels/NAME.txt, optionally restricted by
a split file of stems. Labels are normalised, so an image and its label agree whatever size the
image is read or resized to.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pinpoint.codecs.heatmap import encode
from pinpoint.config import TrainConfig
from pinpoint.data import transforms as T
from pinpoint.data.images import find_image, list_images, read_image
from pinpoint.data.labels import read_labels
from pinpoint.errors import InputError


@dataclass
class Sample:
    """One labelled image: grey float32 pixels and its target points in pixels."""

    stem: str
    image: np.ndarray  # (H, W) float32 in [0, 1]
    xy: np.ndarray  # (N, 2) pixels, x = column, y = row
    path: Path


def read_split(path: str | os.PathLike) -> list[str]:
    """Stems listed in a split file, one per line; CRLF, blank lines and file suffixes tolerated."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: split file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read split file ({exc})") from None
    stems = [Path(line.strip()).stem if Path(line.strip()).suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".txt") else line.strip()
             for line in text.splitlines() if line.strip()]
    if not stems:
        raise InputError(f"{path}: split file lists no image")
    return stems


def dataset_stems(data_dir: str | os.PathLike, split: str | os.PathLike | None = None) -> list[str]:
    """The stems of a dataset: those of the split file, or every image in DIR/images."""
    data_dir = Path(data_dir)
    if not (data_dir / "images").is_dir():
        raise InputError(f"{data_dir}: no images/ folder (expected DIR/images and DIR/labels)")
    if split is not None:
        return read_split(split)
    stems = [p.stem for p in list_images(data_dir / "images")]
    if not stems:
        raise InputError(f"{data_dir / 'images'}: no images found")
    return stems


def load_sample(data_dir: str | os.PathLike, stem: str) -> Sample:
    """Read one image and its label; a missing label is an error naming the file."""
    data_dir = Path(data_dir)
    path = find_image(data_dir / "images", stem)
    image = read_image(path)
    labels = read_labels(data_dir / "labels" / f"{stem}.txt")
    height, width = image.shape
    return Sample(stem, image, labels.xy * np.array([width, height], dtype=np.float64), path)


def load_samples(data_dir: str | os.PathLike, split: str | os.PathLike | None = None) -> list[Sample]:
    return [load_sample(data_dir, stem) for stem in dataset_stems(data_dir, split)]


class TrainingSet(torch.utils.data.Dataset):
    """Samples -> (image (1, h, w), target, weight) tensors, with the run's geometry and augmentation.

    Heatmap models get a gaussian heatmap target (1, h, w); the regression model gets the first
    target's normalised position (2,) with weight 0 for images without a target.
    """

    def __init__(self, samples: list[Sample], cfg: TrainConfig, output: str, seed: int = 0):
        self.samples = samples
        self.cfg = cfg
        self.output = output
        self.seed = seed
        self.epoch = 0
        # standardise once, on the whole image, as inference does (crops must not see other statistics)
        self.images = [T.standardize(s.image) for s in samples]

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        """Different, reproducible augmentation every epoch (also across DataLoader workers)."""
        self.epoch = epoch

    def __getitem__(self, index: int):
        rng = np.random.default_rng((self.seed, self.epoch, index))
        image, xy = self.images[index], self.samples[index].xy
        if self.cfg.img_size:
            image, xy = T.resize(image, xy, (self.cfg.img_size, self.cfg.img_size))
        else:
            image, xy = self._crop(image, xy, rng)
        return self._tensors(*self._augment(image, xy, rng))

    def whole(self, index: int, stride: int):
        """The un-augmented whole image as inference sees it (resized, or padded to `stride`), with its target."""
        image, xy = self.images[index], self.samples[index].xy
        if self.cfg.img_size:
            image, xy = T.resize(image, xy, (self.cfg.img_size, self.cfg.img_size))
        else:
            image = T.pad_to_multiple(image, stride)
        return self._tensors(image, xy)

    def _tensors(self, image: np.ndarray, xy: np.ndarray):
        cfg = self.cfg
        tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None]
        if self.output == "heatmap":
            target = torch.from_numpy(encode(xy, image.shape, cfg.sigma))[None]
            return tensor, target, torch.tensor(1.0)
        height, width = image.shape
        if len(xy):
            point = torch.tensor([xy[0, 0] / width, xy[0, 1] / height], dtype=torch.float32)
            return tensor, point.clamp(0, 1), torch.tensor(1.0)
        return tensor, torch.zeros(2), torch.tensor(0.0)

    def _crop(self, image: np.ndarray, xy: np.ndarray, rng: np.random.Generator):
        size = self.cfg.crop_size
        height, width = image.shape
        if len(xy) and rng.random() < self.cfg.crop_on_target:
            cx, cy = xy[rng.integers(len(xy))] + rng.uniform(-size * 0.4, size * 0.4, 2)
            left, top = int(round(cx - size / 2)), int(round(cy - size / 2))
        else:
            left = int(rng.integers(min(0, width - size), max(width - size, 0) + 1))
            top = int(rng.integers(min(0, height - size), max(height - size, 0) + 1))
        return T.crop(image, xy, top, left, (size, size), fill=float(image.mean()))

    def _augment(self, image: np.ndarray, xy: np.ndarray, rng: np.random.Generator):
        cfg = self.cfg
        if cfg.flip and rng.random() < 0.5:
            image, xy = T.hflip(image, xy)
        if cfg.flip and rng.random() < 0.5:
            image, xy = T.vflip(image, xy)
        if cfg.rot90 and image.shape[0] == image.shape[1]:
            image, xy = T.rot90(image, xy, int(rng.integers(4)))
        if cfg.intensity_jitter > 0:
            strength = cfg.intensity_jitter
            image = image * float(np.exp(rng.normal(0, strength))) + float(rng.normal(0, strength))
        return image, xy
