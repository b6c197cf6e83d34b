"""Shared fixtures: small datasets made on the fly (tests never depend on ../shared)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from pinpoint.checkpoints import save_checkpoint
from pinpoint.codecs.heatmap import encode
from pinpoint.config import TrainConfig
from pinpoint.data import transforms as T
from pinpoint.data.labels import write_labels
from pinpoint.models.registry import create_model
from pinpoint.train import make_checkpoint

SHARED_SIRST = Path(__file__).resolve().parents[2] / "shared" / "data" / "NUAA-SIRST"


def make_spot_dataset(root: Path, n: int, seed: int = 0, size: int = 64) -> Path:
    """Bright 1-3 px spots on a noisy flat background: easy enough to learn in seconds."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        xy = rng.uniform(4, size - 5, (int(rng.integers(1, 4)), 2))
        image = 0.2 + 0.03 * rng.standard_normal((size, size)) + 0.6 * encode(xy, (size, size), 1.2)
        cv2.imwrite(str(root / "images" / f"im{i:03d}.png"), (np.clip(image, 0, 1) * 255).astype(np.uint8))
        write_labels(root / "labels" / f"im{i:03d}.txt", xy / size)
    return root


@pytest.fixture(scope="session")
def spot_data(tmp_path_factory) -> Path:
    root = make_spot_dataset(tmp_path_factory.mktemp("spots"), 48)
    stems = sorted(p.stem for p in (root / "images").iterdir())
    (root / "train.txt").write_text("\r\n".join(stems[:36]) + "\r\n")
    (root / "val.txt").write_text("\n".join(stems[36:42]) + "\n")
    (root / "test.txt").write_text("\n".join(stems[42:]) + "\n")
    return root


def spot_image(rng: np.random.Generator, size: tuple[int, int], count: int = 3) -> np.ndarray:
    """A noisy flat frame with `count` bright 1-3 px spots, float32 in [0, 1]."""
    xy = rng.uniform(4, [size[1] - 5, size[0] - 5], (count, 2))
    return np.clip(0.2 + 0.05 * rng.standard_normal(size) + 0.6 * encode(xy, size, 1.2), 0, 1).astype(np.float32)


def random_checkpoint(path: Path, model_name: str = "heatmap", img_size: int = 0, seed: int = 0) -> Path:
    """A random-weight checkpoint whose BatchNorm statistics are measured on spot images.

    Freshly initialised BatchNorm (mean 0, variance 1) makes the seed net's output almost constant,
    one tie after another; calibrated statistics give it distinct peaks, which an equality test needs.
    """
    torch.manual_seed(seed)
    model = create_model(model_name)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # a plain average over the calibration batch
    rng = np.random.default_rng(seed)
    batch = np.stack([T.standardize(spot_image(rng, (64, 64))) for _ in range(8)])[:, None]
    model.train()
    with torch.no_grad():
        model(torch.from_numpy(batch))
    model.eval()
    cfg = TrainConfig(model=model_name, img_size=img_size)
    save_checkpoint(make_checkpoint(model, cfg, 0.5, 0, {}), path)
    return path
