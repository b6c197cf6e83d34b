"""Shared fixtures: small datasets made on the fly (tests never depend on ../shared)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pinpoint.codecs.heatmap import encode
from pinpoint.data.labels import write_labels

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
