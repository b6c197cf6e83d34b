"""The README's picture: a checkpoint's detections on one frame of a drone-ir video, enlarged.

    python benchmarks/readme_picture.py RUN/best.pt                  # list the val videos' frames it gets right
    python benchmarks/readme_picture.py RUN/best.pt --video IR_DRONE_059 --frame 120 --out docs/images/detection.png

Without --video it scores every 30th frame of drone-ir's val videos against their labels (5 px)
and prints the frames where the detector finds the one labelled target with no false alarm, so a
picture is chosen among frames it gets right, and says so. drone-ir is CC0 (Svanström et al.).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from pinpoint.data import transforms as T
from pinpoint.points import Points
from pinpoint.predict import Detector
from pinpoint.sources import open_source
from pinpoint.viz import annotate, save_image

DRONE_IR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "drone-ir"
MATCH_PX = 5.0


def labelled_points(video: str) -> dict[int, np.ndarray]:
    """Box centres per frame (pixels) from the video's label CSV."""
    points: dict[int, list[tuple[float, float]]] = {}
    with open(DRONE_IR / "labels" / f"{video}.csv", newline="") as f:
        for row in csv.DictReader(f):
            points.setdefault(int(row["frame"]), []).append((float(row["x"]), float(row["y"])))
    return {frame: np.array(xy) for frame, xy in points.items()}


def right_frames(detector: Detector, every: int) -> None:
    for video in (DRONE_IR / "splits" / "val.txt").read_text().split():
        truth = labelled_points(video)
        for frame in open_source(DRONE_IR / "videos" / f"{video}.mp4"):
            if frame.index % every or len(truth.get(frame.index, [])) != 1:
                continue
            found = detector.predict(frame.image)
            if len(found) == 1 and np.hypot(*(found.xy[0] - truth[frame.index][0])) <= MATCH_PX:
                print(f"{video} frame {frame.index}: score {found.score[0]:.2f}", flush=True)


def picture(detector: Detector, video: str, index: int, out: Path, zoom: int) -> None:
    frame = next(f for f in open_source(DRONE_IR / "videos" / f"{video}.mp4") if f.index == index)
    points, heatmap = detector.predict_with_heatmap(frame.image)
    height, width = frame.image.shape
    size = (height * zoom, width * zoom)
    grey, xy = T.resize(frame.image, points.xy, size)
    big_heatmap, _ = T.resize(heatmap, np.zeros((0, 2)), size)
    save_image(out, annotate(grey, Points(xy, points.score, size), big_heatmap))
    print(f"{out}: {video} frame {index}, {len(points)} point(s): "
          + ", ".join(f"({x:.1f}, {y:.1f}) score {s:.2f}" for (x, y), s in zip(points.xy, points.score)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights")
    parser.add_argument("--video", help="a drone-ir video stem")
    parser.add_argument("--frame", type=int, default=0)
    parser.add_argument("--every", type=int, default=30, help="frames between the ones scored when listing")
    parser.add_argument("--zoom", type=int, default=2)
    parser.add_argument("--out", default="docs/images/detection.png")
    args = parser.parse_args()
    detector = Detector.load(args.weights, device="cpu")
    if args.video:
        picture(detector, args.video, args.frame, Path(args.out), args.zoom)
    else:
        right_frames(detector, args.every)
    return 0


if __name__ == "__main__":
    sys.exit(main())
