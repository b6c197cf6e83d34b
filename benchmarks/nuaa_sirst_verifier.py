"""What-if: a second look at each candidate point, by a small classifier on the patch around it.

    python benchmarks/nuaa_sirst_verifier.py RUN/best.pt [RUN2/best.pt ...] [--patch 32] [--epochs 40]
    python benchmarks/nuaa_sirst_verifier.py RUN/best.pt --out-of-fold WORK   # candidates from detectors that did not see the image

Why: the default's remaining false alarms are bright clutter it scores 0.38 to 0.8, and its
misses are faint targets it scores 0.05 to 0.33 (nuaa_sirst_analysis.py errors). The detector
learns both from a dense heatmap loss in which those few hard points are a sliver of the pixels; a
classifier trained on the detector's own candidates only (every peak above a low floor, about 35
per image) spends all its capacity on telling them apart.

For each checkpoint: the run's training images are split into training and validation exactly as
the run split them. The detector's candidates on the training part, labelled hit or not within
3 px, plus a patch on every labelled target, train the classifier. On its own training images a
detector has seen every target and every clutter spot, so with --out-of-fold the training part is
halved, the run's recipe trains one detector per half (in WORK, reused if there), and each half's
candidates come from the detector trained on the other half, as the test images' come from one
that never saw them. The classifier is trained with binary cross-entropy, quarter turns, flips,
+-1 px shifts and a gain jitter. A candidate's new score is the detector's score
times the classifier's probability (averaged over the 8 mirror images). Its threshold is chosen on
the validation part (smoothed F1, as training does). The test split is scored both ways.
Nothing here is used by pinpoint itself.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nuaa_sirst_analysis import DATA, MATCH_PX, f1_at, f1_counts, run_config
from pinpoint.config import TrainConfig
from pinpoint.data import transforms as T
from pinpoint.data.dataset import Sample, load_samples, load_stems
from pinpoint.files import write_text
from pinpoint.metrics import best_threshold, evaluate, match_points
from pinpoint.points import Points
from pinpoint.predict import Detector
from pinpoint.train import ground_truth, split_stems, train as train_detector

FLOOR = 0.02  # candidates: every decoded point scored at least this (Pd 0.97 on the test split, 34 per image)
SHIFT = 1  # training patches are cut up to this many px off the candidate


class Verifier(nn.Module):
    """Six 3x3 conv-BN-ReLU layers with two 2x poolings, then the mean and max of each channel -> one logit."""

    def __init__(self, width: int = 16):
        super().__init__()

        def conv(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        self.features = nn.Sequential(conv(1, width), conv(width, width), nn.MaxPool2d(2),
                                      conv(width, 2 * width), conv(2 * width, 2 * width), nn.MaxPool2d(2),
                                      conv(2 * width, 3 * width), conv(3 * width, 3 * width))
        self.head = nn.Linear(6 * width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        return self.head(torch.cat([h.mean((2, 3)), h.amax((2, 3))], 1))[:, 0]


def candidates(detector: Detector, samples: list[Sample]) -> list[tuple[Points, np.ndarray]]:
    """Every decoded point above FLOOR per image, with whether it hits a target (one-to-one, 3 px)."""
    found = detector.predict_batch([s.image for s in samples], conf=FLOOR)
    return [(p, match_points(p.xy, p.score, s.xy, MATCH_PX).pred_matched) for p, s in zip(found, samples)]


def out_of_fold_candidates(cfg: TrainConfig, train: list[Sample], work: Path) -> list[tuple[Points, np.ndarray]]:
    """Candidates on each half of `train` from a detector trained with `cfg`'s recipe on the other half."""
    order = np.random.default_rng(cfg.seed).permutation(len(train))
    halves = [order[0::2], order[1::2]]
    found: list[tuple[Points, np.ndarray]] = [None] * len(train)  # type: ignore[list-item]
    for k, (own, other) in enumerate((halves, halves[::-1])):
        run = work / f"fold{k}"
        if not (run / "best.pt").is_file():
            split = work / f"fold{k}.txt"
            write_text(split, "".join(f"{train[i].stem}\n" for i in sorted(own)))
            train_detector(TrainConfig.from_dict({**cfg.to_dict(), "split": str(split), "out": str(run), "progress": False}))
        detector = Detector.load(run / "best.pt", device="cpu")
        for i, result in zip(other, candidates(detector, [train[i] for i in other])):
            found[i] = result
    return found


def patches(sample: Sample, xy: np.ndarray, size: int) -> np.ndarray:
    """(N, 1, size, size) cuts of the standardised image centred on the rounded points (mirrored past the edges)."""
    half = size // 2
    image = np.pad(T.standardize(sample.image), half, mode="reflect")
    corners = np.round(np.asarray(xy).reshape(-1, 2)).astype(int)  # (column, row) of the centre = top-left corner after padding
    cut = [image[r:r + size, c:c + size] for c, r in corners]
    return np.stack(cut)[:, None] if cut else np.zeros((0, 1, size, size), np.float32)


def training_patches(samples: list[Sample], found: list[tuple[Points, np.ndarray]], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Patches (with SHIFT px to spare) on every candidate and every labelled target, and their labels."""
    cut, labels = [], []
    for sample, (points, hit) in zip(samples, found):
        xy = np.concatenate([points.xy, sample.xy])
        cut.append(patches(sample, xy, size + 2 * SHIFT))
        labels.append(np.r_[hit.astype(np.float32), np.ones(len(sample.xy), np.float32)])
    return np.concatenate(cut), np.concatenate(labels)


def train_verifier(x: np.ndarray, y: np.ndarray, size: int, epochs: int, seed: int) -> Verifier:
    """Binary cross-entropy, AdamW with a one-cycle schedule, batches of 64 with random mirror images and shifts."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = Verifier()
    batch = 64
    steps = epochs * -(-len(y) // batch)
    optimizer = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps)
    x_all, y_all = torch.from_numpy(x), torch.from_numpy(y)
    net.train()
    for _ in range(epochs):
        order = rng.permutation(len(y))
        for start in range(0, len(y), batch):
            idx = torch.from_numpy(order[start:start + batch])
            dy, dx = rng.integers(0, 2 * SHIFT + 1, 2)
            inputs = x_all[idx][:, :, dy:dy + size, dx:dx + size]
            inputs = torch.rot90(inputs, int(rng.integers(4)), (2, 3))
            if rng.random() < 0.5:
                inputs = torch.flip(inputs, (3,))
            inputs = inputs * float(np.exp(rng.uniform(-0.2, 0.2)))
            loss = F.binary_cross_entropy_with_logits(net(inputs), y_all[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    return net.eval()


@torch.no_grad()
def rescore(net: Verifier, samples: list[Sample], found: list[tuple[Points, np.ndarray]], size: int) -> list[Points]:
    """Each candidate's detector score times the verifier's probability, averaged over its 8 mirror images."""
    out = []
    for sample, (points, _) in zip(samples, found):
        x = torch.from_numpy(patches(sample, points.xy, size))
        prob = torch.zeros(len(x))
        if len(x):
            for k in range(4):
                turned = torch.rot90(x, k, (2, 3))
                prob += torch.sigmoid(net(turned)) + torch.sigmoid(net(torch.flip(turned, (3,))))
        out.append(Points(points.xy, points.score * (prob / 8).numpy(), points.image_size))
    return out


def report(name: str, points: list[Points], val_points: list[Points], val: list[Sample], test: list[Sample]) -> None:
    cut = best_threshold(val_points, ground_truth(val), MATCH_PX, smooth=0.1).threshold
    tp, fp, targets = f1_counts(points, test, cut)
    ap = evaluate(points, ground_truth(test), (MATCH_PX,))[MATCH_PX].AP
    best = max(f1_at(points, test, t) for t in np.arange(0.01, 0.99, 0.01))
    print(f"  {name:>20}: threshold {cut:.3f} (validation), test F1 {2 * tp / (targets + tp + fp):.4f}, Pd {tp / targets:.4f}, "
          f"precision {tp / max(tp + fp, 1):.4f}, AP {ap:.4f}; F1 at the best test cut {best:.4f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", nargs="+")
    parser.add_argument("--patch", type=int, default=32, help="side of the patch the verifier sees, px (even)")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-of-fold", type=Path, metavar="WORK", help="train on candidates from detectors trained on the other half")
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"{DATA}: NUAA-SIRST not found", file=sys.stderr)
        return 2
    test = load_samples(DATA, DATA / "splits" / "50_50" / "test.txt")
    for weights in args.weights:
        start = time.time()
        detector = Detector.load(weights, device="cpu")
        cfg = run_config(weights)
        train_stems, val_stems = split_stems(cfg)
        train, val = load_stems(DATA, train_stems), load_stems(DATA, val_stems)
        on_val, on_test = candidates(detector, val), candidates(detector, test)
        on_train = out_of_fold_candidates(cfg, train, args.out_of_fold / Path(weights).parent.name) if args.out_of_fold \
            else candidates(detector, train)
        x, y = training_patches(train, on_train, args.patch)
        net = train_verifier(x, y, args.patch, args.epochs, args.seed)
        print(f"{weights}: verifier ({sum(p.numel() for p in net.parameters()):,} parameters) trained on {len(y)} patches "
              f"({int(y.sum())} on targets) in {time.time() - start:.0f} s")
        covered, targets = sum(int(hit.sum()) for _, hit in on_test), sum(len(s.xy) for s in test)
        print(f"  test candidates: {sum(len(p) for p, _ in on_test) / len(test):.1f} per image, within {MATCH_PX:g} px of "
              f"{covered} of {targets} targets (Pd {covered / targets:.4f}: the most any rescoring can reach)")
        report("detector", [p for p, _ in on_test], [p for p, _ in on_val], val, test)
        report("detector x verifier", rescore(net, test, on_test, args.patch), rescore(net, val, on_val, args.patch), val, test)
    return 0


if __name__ == "__main__":
    sys.exit(main())
