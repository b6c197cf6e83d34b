"""The result of detection on one image: points in the original image's pixel frame, with scores."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from pinpoint.data.labels import Labels, write_labels


@dataclass
class Points:
    """Points found (or labelled) in one image.

    `xy` is in pixels of the original image (x = column, y = row, pixel centres at integers);
    `score` is the detector's confidence, 1.0 for ground truth. Index it like an array:
    `points[points.score > 0.5]`.
    """

    xy: np.ndarray  # (N, 2) float64 pixels
    score: np.ndarray  # (N,) float64
    image_size: tuple[int, int]  # (H, W) of the original image
    # True when the detector found more points above its threshold than its cap (max_points) and
    # kept only the best: the image's list is then incomplete, which detect and eval report
    capped: bool = False

    def __post_init__(self) -> None:
        self.xy = np.asarray(self.xy, dtype=np.float64).reshape(-1, 2)
        self.score = np.asarray(self.score, dtype=np.float64).reshape(-1)
        if len(self.xy) != len(self.score):
            raise ValueError(f"{len(self.xy)} points but {len(self.score)} scores")
        height, width = self.image_size
        self.image_size = (int(height), int(width))

    def __len__(self) -> int:
        return len(self.xy)

    def __getitem__(self, index) -> "Points":
        return Points(self.xy[index], self.score[index], self.image_size, self.capped)

    @property
    def xy_norm(self) -> np.ndarray:
        """Coordinates divided by (W, H), as stored in label files."""
        height, width = self.image_size
        return self.xy / np.array([width, height], dtype=np.float64)

    @classmethod
    def from_labels(cls, labels: Labels, image_size: tuple[int, int]) -> "Points":
        """Pixel points from normalised labels for an image of `image_size` (H, W)."""
        height, width = image_size
        xy = labels.xy * np.array([width, height], dtype=np.float64)
        score = labels.scores if labels.scores is not None else np.ones(len(xy))
        return cls(xy, score, image_size)

    def save(self, path: str | os.PathLike) -> None:
        """Write a prediction label file (x y score, normalised)."""
        write_labels(path, self.xy_norm, self.score)
