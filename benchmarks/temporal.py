"""Does the detector gain from seeing time? Issue 27's last lever, measured on drone-ir.

    python benchmarks/temporal.py --frames 0 5 10 --name stack3   # train, then cache points (~15 min)
    python benchmarks/temporal.py --frames 0 --name single        # the control: one frame, same loop
    python benchmarks/temporal.py --frames 0 5 10 --name stack3-seed1 --seed 1   # and each again with another seed
    python benchmarks/temporal.py --report single single-seed1 stack3 stack3-seed1   # scored alone and tracked

The tracker cannot lift per-frame F1 on drone-ir by much, because the detector's errors there last
(docs/research-log.md, "Tracking: defaults chosen on held-out videos"): a faint drone missed for
hundreds of frames beside fixed warm spots that score as much. What could tell them apart is
motion against the background, which one frame does not show. So the network here sees the frame
and earlier frames (`--frames 0 5 10`: now, 5 and 10 frames before, 1/6 and 1/3 s at 30 fps),
each earlier frame shifted onto the current one by the global translation that phase correlation
finds (the pan of the camera), stacked as channels. The control is the same loop with one frame.

Same recipe as the shipped model's drone-ir-only row (benchmarks/pretrained.py): PinNet-S2D with
gates, every 10th labelled frame of drone-ir's training videos less the 20 the shipped model held
out (the tuning videos, never trained on), 11 epochs, crops of 192 px, focal loss, EMA. Each
model's threshold is the one that maximises per-frame F1 on the tuning videos; the val videos
are scored once with it. Points are decoded without snapping, by the same code for both models.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import deque
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tracking import DRONE_IR, load_videos, replay, save_candidates, tuning_videos, val_videos  # noqa: E402

from pinpoint.codecs.heatmap import decode, encode  # noqa: E402
from pinpoint.codecs.snap import blob_radii  # noqa: E402
from pinpoint.config import TrainConfig  # noqa: E402
from pinpoint.data import transforms as T  # noqa: E402
from pinpoint.data.dataset import Sample, TrainingSet  # noqa: E402
from pinpoint.data.videos import read_video_labels, video_stems  # noqa: E402
from pinpoint.files import find_by_stem, write_text  # noqa: E402
from pinpoint.metrics import Evaluator  # noqa: E402
from pinpoint.models.pinnet import PinNetS2DGated  # noqa: E402
from pinpoint.sources import VIDEO_SUFFIXES, VideoFile  # noqa: E402
from pinpoint.tracking import TrackerSettings  # noqa: E402
from pinpoint.train import ema_update, make_scheduler, seed_everything, training_loss  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / "work" / "temporal"
RECIPE = ROOT / "benchmarks" / "work" / "pretrained" / "drone-ir-only" / "config.json"
FLOOR = 0.05  # the lowest score cached


class StackedPinNet(PinNetS2DGated):
    """PinNetS2DGated whose stem takes `frames` stacked frames (pixel-unshuffled: 4 channels each)."""

    def __init__(self, frames: int):
        self.frames = frames
        super().__init__()

    def make_stem(self, cin: int, cout: int) -> torch.nn.Module:
        return super().make_stem(cin * self.frames, cout)


def shift_onto(current: np.ndarray, earlier: np.ndarray) -> np.ndarray:
    """`earlier` moved by the global translation that best lays it onto `current` (the camera's pan)."""
    (dx, dy), _ = cv2.phaseCorrelate(earlier.astype(np.float64), current.astype(np.float64))
    move = np.array([[1, 0, dx], [0, 1, dy]], np.float64)
    return cv2.warpAffine(earlier, move, (earlier.shape[1], earlier.shape[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def stacks(stem: str, offsets: list[int], wanted: set[int] | None = None):
    """(frame index, (H, W, len(offsets)) float32 stack) for each frame of a video (or those in
    `wanted`): the frame, then each earlier one (clamped at frame 0) shifted onto it."""
    path = find_by_stem(DRONE_IR / "videos", stem, VIDEO_SUFFIXES, "video")
    history: deque[np.ndarray] = deque(maxlen=max(offsets) + 1)
    for frame in VideoFile(path).frames():
        history.append(frame.image)
        if wanted is not None and frame.index not in wanted:
            continue
        current = frame.image
        layers = [current] + [shift_onto(current, history[max(len(history) - 1 - k, 0)]) for k in offsets[1:]]
        yield frame.index, np.stack(layers, axis=-1).astype(np.float32)


class StackSet(TrainingSet):
    """TrainingSet (the shipped recipe's crops and augmentation) for standardised (H, W, C) stacks:
    each sample -> (stack (C, 192, 192), heatmap target, weight)."""

    def __init__(self, samples: list[Sample], cfg: TrainConfig):
        super().__init__([], cfg, "heatmap", cfg.seed)
        self.samples, self.images = samples, [sample.image for sample in samples]

    def _tensors(self, image: np.ndarray, xy: np.ndarray, keep: np.ndarray | None = None):
        cfg = self.cfg
        sigma = np.maximum(cfg.sigma, cfg.blob_sigma * blob_radii(image[..., 0], xy))
        return (torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)),
                torch.from_numpy(encode(xy, image.shape[:2], sigma))[None], torch.ones((1,) + image.shape[:2]))


def training_data(offsets: list[int]) -> list[Sample]:
    """Every 10th labelled frame of the training videos less the tuning ones, as standardised stacks."""
    held = set(tuning_videos())
    stems = [s for s in video_stems(DRONE_IR, DRONE_IR / "splits" / "train.txt") if s not in held]
    samples = []
    for stem in stems:
        labels = read_video_labels(DRONE_IR / "labels" / f"{stem}.csv")
        wanted = set(sorted(labels.points)[::10])
        for index, stack in stacks(stem, offsets, wanted):
            samples.append(Sample(f"{stem}_{index:06d}", T.standardize(stack), labels.points[index], labels.path))
    print(f"{len(samples)} training frames from {len(stems)} videos", flush=True)
    return samples


def train(offsets: list[int], out: Path, seed: int) -> StackedPinNet:
    cfg = TrainConfig.from_dict({**json.loads(RECIPE.read_text()), "seed": seed})
    seed_everything(cfg.seed)
    start = time.time()
    dataset = StackSet(training_data(offsets), cfg)
    model = StackedPinNet(len(offsets))
    ema = AveragedModel(model, multi_avg_fn=ema_update(cfg.ema), use_buffers=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scheduler = make_scheduler(cfg, optimizer)
    loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.batch, shuffle=True, drop_last=True,
                                         generator=torch.Generator().manual_seed(cfg.seed))
    print(f"data ready in {time.time() - start:.0f} s", flush=True)
    for epoch in range(1, cfg.epochs + 1):
        began, total = time.time(), 0.0
        dataset.set_epoch(epoch)
        model.train()
        for stack, target, weight in loader:
            loss = training_loss("heatmap", model(stack), target, weight, cfg.loss, across_processes=False)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            ema.update_parameters(model)
            total += loss.item()
        scheduler.step()
        print(f"epoch {epoch}/{cfg.epochs}: loss {total / len(loader):.5f}, {time.time() - began:.0f} s", flush=True)
    torch.save({"offsets": offsets, "model": ema.module.state_dict()}, out / "model.pt")
    print(f"trained in {(time.time() - start) / 60:.1f} min", flush=True)
    return ema.module


@torch.no_grad()
def cache_points(model: StackedPinNet, offsets: list[int], stems: list[str], where: Path) -> float:
    """Each video's points at or above FLOOR, in benchmarks/tracking.py's cache format; returns frames per second."""
    model.eval()
    where.mkdir(parents=True, exist_ok=True)
    frames_done, start = 0, time.perf_counter()
    for stem in stems:
        target = where / f"{stem}.npz"
        frame_of, xy, score, count, size = [], [], [], 0, None
        batch: list[tuple[int, np.ndarray]] = []

        def flush() -> None:
            heatmaps = model(torch.from_numpy(np.stack([s.transpose(2, 0, 1) for _, s in batch])))
            for (index, _), peaks in zip(batch, decode(heatmaps, 100, FLOOR, 7, True)):
                frame_of.append(np.full(len(peaks.xy), index))
                xy.append(peaks.xy.reshape(-1, 2))
                score.append(peaks.scores)
            batch.clear()

        for index, stack in stacks(stem, offsets):
            batch.append((index, T.standardize(stack)))
            count, size = count + 1, stack.shape[:2]
            if len(batch) == 16:
                flush()
        if batch:
            flush()
        save_candidates(target, frame_of, xy, score, count, size)
        frames_done += count
    return frames_done / (time.perf_counter() - start)


def best_threshold(videos, distance: float = 5.0) -> float:
    """The score cut (0.20, 0.22, ... 0.80) that maximises per-frame F1 of the detector alone."""
    best, best_f1 = 0.5, -1.0
    for t in np.arange(0.2, 0.81, 0.02):
        evaluator = Evaluator((distance,), float(t))
        for video in videos:
            for candidates, truth, boxes in zip(video.candidates, video.truth, video.boxes):
                evaluator.add(candidates[candidates.score >= t], truth, boxes)
        f1 = evaluator.result()[distance].F1
        if f1 > best_f1:
            best, best_f1 = round(float(t), 2), f1
    return best


def report(names: list[str]) -> None:
    rows = {}
    for name in names:
        tune = load_videos(WORK / name / "tune", tuning_videos())
        threshold = best_threshold(tune)
        val = load_videos(WORK / name / "val", val_videos())
        rows[name] = {"threshold": threshold, "tune": replay(tune, TrackerSettings(), threshold),
                      "val": replay(val, TrackerSettings(), threshold)}
        for split in ("tune", "val"):
            d, t = rows[name][split]["detector"], rows[name][split]["tracker"]
            print(f"{name} {split} (threshold {threshold:.2f}): detector F1 {d['F1']:.4f} (Pd {d['Pd']:.4f}, precision "
                  f"{d['precision']:.4f}, FA/frame {d['FA_per_frame']:.4f}) -> tracker F1 {t['F1']:.4f} (Pd {t['Pd']:.4f}, "
                  f"precision {t['precision']:.4f}, FA/frame {t['FA_per_frame']:.4f})", flush=True)
    write_text(ROOT / "benchmarks" / "results" / "temporal.json", json.dumps(rows, indent=1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[0, 5, 10], help="offsets back in time, 0 first")
    parser.add_argument("--name", default="stack3")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report", nargs="+", metavar="NAME")
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.report:
        report(args.report)
        return 0
    if args.frames[0] != 0 or any(k <= 0 for k in args.frames[1:]):
        raise SystemExit("--frames: 0 first, then offsets > 0")
    out = WORK / args.name
    out.mkdir(parents=True, exist_ok=True)
    model = train(args.frames, out, args.seed)
    for split, stems in (("tune", tuning_videos()), ("val", val_videos())):
        fps = cache_points(model, args.frames, stems, out / split)
        print(f"{split}: points cached, {fps:.0f} frames/s (decode, align, network, peaks)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
