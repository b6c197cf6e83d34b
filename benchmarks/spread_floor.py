"""The floor on the spread that standardisation divides by (data/transforms.py, SPREAD_FLOOR).

Prints three things, each with the shipped model (its ONNX export, as `pinpoint detect` runs it):

1. how a real frame's spread compares with its range, per dataset: the least std / (max - min)
   over the images (drone-ir: every 50th of the first 300 frames of each video);
2. NUAA-SIRST 50/50 test at each floor: images whose spread the floor replaces, images whose
   points change, and F1 at 3 px;
3. a noise-free flat frame with 4 small targets at growing sizes: the points found without a
   floor and with the chosen one (the right answer is 4).

    python benchmarks/spread_floor.py            # about 2 minutes on 2 cores
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import pinpoint  # noqa: E402
from pinpoint.data import transforms as T  # noqa: E402
from pinpoint.data.dataset import load_samples  # noqa: E402
from pinpoint.data.images import read_image  # noqa: E402
from pinpoint.metrics import evaluate  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
FLOORS = (0.0, 0.01, 0.015, 0.02, 0.03)
SIDES = (512, 2048, 3000, 4096, 8192)
TARGETS = ((0.25, 0.25), (0.75, 0.3), (0.3, 0.7), (0.7, 0.75))


def standardize_with(floor: float):
    """transforms.standardize with another floor (0: the plain standard deviation)."""
    def standardize(image: np.ndarray) -> np.ndarray:
        values = image.astype(np.float64)
        spread = max(float(values.std()), floor * float(values.max() - values.min()))
        return ((values - values.mean()) / spread if spread > 0 else values - values.mean()).astype(np.float32)
    return standardize


def ratio(grey: np.ndarray) -> float:
    values = grey.astype(np.float64)
    span = values.max() - values.min()
    return float(values.std() / span) if span > 0 else float("inf")


def spread_per_dataset() -> None:
    print("least spread / range of a real frame:")
    rng = random.Random(0)
    for name, folder in (("NUAA-SIRST", "NUAA-SIRST"), ("MDvsFA", "MDvsFA"), ("HIT-UAV", "HIT-UAV"), ("RoadScene", "RoadScene")):
        paths = sorted((DATA / folder / "images").iterdir())
        rng.shuffle(paths)
        ratios = [ratio(read_image(p)) for p in paths[:600]]
        print(f"  {name:<11} {min(ratios):.4f} over {len(ratios)} images")
    ratios = []
    for video in sorted((DATA / "drone-ir" / "videos").iterdir()):
        capture = cv2.VideoCapture(str(video))
        for index in range(300):
            ok, frame = capture.read()
            if not ok:
                break
            if index % 50 == 0:
                ratios.append(ratio(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)))
        capture.release()
    print(f"  {'drone-ir':<11} {min(ratios):.4f} over {len(ratios)} frames")


def nuaa_sirst_at_each_floor(detector) -> None:
    root = DATA / "NUAA-SIRST"
    samples = load_samples(root, root / "splits" / "50_50" / "test.txt")
    print("NUAA-SIRST 50/50 test, shipped model:")
    base = None
    for floor in FLOORS:
        T.standardize = standardize_with(floor)
        preds = [detector.predict(s.image) for s in samples]
        scores = evaluate(preds, [s.truth for s in samples], (3.0,))[3.0]
        touched = sum(ratio(s.image) < floor for s in samples)
        changed = 0 if base is None else sum(len(a) != len(b) or not np.allclose(a.xy, b.xy, atol=1e-3)
                                             for a, b in zip(preds, base))
        if base is None:
            base = preds
        print(f"  floor {floor:<5g} spread replaced in {touched:3d} images, points changed in {changed:3d}, F1 {scores.F1:.4f}")


def flat_frame(side: int) -> np.ndarray:
    image = np.full((side, side), 0.2, np.float32)
    for cx, cy in TARGETS:
        x, y = cx * side, cy * side
        rows, cols = np.mgrid[int(y) - 10:int(y) + 11, int(x) - 10:int(x) + 11]
        image[rows, cols] += 0.3 * np.exp(-((cols - x) ** 2 + (rows - y) ** 2) / (2 * 1.5 ** 2)).astype(np.float32)
    return image


def flat_frames(detector, floor: float) -> None:
    print(f"noise-free flat frame with 4 targets, points found (no floor -> floor {floor:g}):")
    for side in SIDES:
        found = []
        for chosen in (0.0, floor):
            T.standardize = standardize_with(chosen)
            found.append(len(detector.predict(flat_frame(side))))
        print(f"  {side} x {side}: {found[0]} -> {found[1]}")


def main() -> None:
    chosen = T.SPREAD_FLOOR
    detector = pinpoint.load(device="cpu")
    spread_per_dataset()
    nuaa_sirst_at_each_floor(detector)
    flat_frames(detector, chosen)


if __name__ == "__main__":
    main()
