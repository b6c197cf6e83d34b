"""train(cfg) -> run folder. A loop you can read top to bottom.

Each epoch: shuffle, augment, step the optimizer over the training split; step the schedule;
score the validation split as a detector (F1 at cfg.match_px, AP) and keep the best epoch;
write last.pt (and best.pt), the CSV log and the loss curve. At the end the detection threshold
that maximises validation F1 is stored in the checkpoints as the default of `detect`.
"""

from __future__ import annotations

import csv
import io
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from pinpoint.config import TrainConfig
from pinpoint.data.dataset import Sample, TrainingSet, dataset_stems, load_sample
from pinpoint.errors import InputError
from pinpoint.files import atomic_path, write_text
from pinpoint.losses import heatmap_loss, point_loss
from pinpoint.metrics import best_threshold, evaluate
from pinpoint.models.registry import count_parameters, create_model
from pinpoint.points import Points
from pinpoint.predict import Detector, inference_settings, resolve_device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def split_stems(cfg: TrainConfig) -> tuple[list[str], list[str]]:
    """Training and validation stems; without a val split, a seeded share of the training split."""
    stems = dataset_stems(cfg.data, cfg.split)
    if cfg.val_split:
        val = dataset_stems(cfg.data, cfg.val_split)
        overlap = sorted(set(val) & set(stems))
        if overlap:
            raise InputError(f"{cfg.val_split}: {len(overlap)} stem(s) also in the training split, e.g. {overlap[0]}")
        return stems, val
    if len(stems) < 2 or cfg.val_fraction <= 0:
        return stems, []
    order = np.random.default_rng(cfg.seed).permutation(len(stems))
    n_val = max(1, int(round(len(stems) * cfg.val_fraction)))
    val = sorted(stems[i] for i in order[:n_val])
    held = set(val)
    return [s for s in stems if s not in held], val


def evaluate_detector(detector: Detector, samples: list[Sample], match_px: float) -> dict[str, float]:
    """Validation F1 at its best threshold (so epochs compare on the best they can do) and AP."""
    preds = [detector.predict(sample.image, conf=0.01) for sample in samples]
    gts = [Points(sample.xy, np.ones(len(sample.xy)), sample.image.shape) for sample in samples]
    scores = evaluate(preds, gts, (match_px,))[match_px]
    try:
        choice = best_threshold(preds, gts, match_px)
        f1, threshold = choice.F1, choice.threshold
    except ValueError:  # no targets or no predictions in the validation images
        f1, threshold = 0.0, detector.threshold
    ap = scores.AP if math.isfinite(scores.AP) else 0.0
    return {"val_f1": f1, "val_ap": ap, "val_threshold": threshold}


def make_checkpoint(model: torch.nn.Module, cfg: TrainConfig, threshold: float, epoch: int,
                    metrics: dict[str, Any], optimizer=None, scheduler=None) -> dict[str, Any]:
    """A plain dict: weights, how to rebuild and run the model, and where training stood."""
    return {
        "model": model.state_dict(),
        "model_name": cfg.model,
        "model_args": cfg.model_args,
        "inference": inference_settings(model, cfg.img_size, threshold, cfg.top_k),
        "config": cfg.to_dict(),
        "epoch": epoch,
        "metrics": metrics,
        "optimizer": optimizer.state_dict() if optimizer else None,
        "scheduler": scheduler.state_dict() if scheduler else None,
        "pinpoint_version": 1,
    }


def save_checkpoint(ckpt: dict[str, Any], path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def train(cfg: TrainConfig) -> Path:
    """Train a model as `cfg` says; returns the run folder with best.pt, last.pt, log.csv and loss.png."""
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)

    train_stems, val_stems = split_stems(cfg)
    train_samples = [load_sample(cfg.data, s) for s in train_stems]
    val_samples = [load_sample(cfg.data, s) for s in val_stems]
    model = create_model(cfg.model, **cfg.model_args).to(device)
    dataset = TrainingSet(train_samples, cfg, model.output, seed=cfg.seed)
    val_set = TrainingSet(val_samples, cfg, model.output, seed=cfg.seed)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=cfg.batch, shuffle=True, num_workers=cfg.workers, drop_last=len(dataset) > cfg.batch,
        generator=torch.Generator().manual_seed(cfg.seed), persistent_workers=cfg.workers > 0)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(cfg.epochs, 1), eta_min=cfg.lr * 0.01)
    elif cfg.schedule == "step":
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(cfg.lr_step, 1), gamma=cfg.lr_gamma)
    else:
        raise ValueError(f"unknown schedule {cfg.schedule!r}; choose step or cosine")
    write_text(out / "config.json", _json(cfg.to_dict()))
    print(f"pinpoint train: {cfg.model} ({count_parameters(model):,} parameters) on {device}, "
          f"{len(train_samples)} training / {len(val_samples)} validation images -> {out}")

    history: list[dict[str, Any]] = []
    best_key, best_threshold_value = (-math.inf,), cfg.threshold
    for epoch in range(1, cfg.epochs + 1):
        started = time.time()
        model.train()
        dataset.set_epoch(epoch)
        total, batches = 0.0, 0
        bar = tqdm(loader, desc=f"epoch {epoch}/{cfg.epochs}", leave=False, disable=not cfg.progress)
        for images, targets, weights in bar:
            images, targets, weights = images.to(device), targets.to(device), weights.to(device)
            pred = model(images)
            loss = heatmap_loss(pred, targets, cfg.loss) if model.output == "heatmap" else point_loss(pred, targets, weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item()
            batches += 1
            bar.set_postfix(loss=f"{total / batches:.5f}")
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()

        row: dict[str, Any] = {"epoch": epoch, "lr": lr, "train_loss": total / max(batches, 1)}
        if val_samples:
            model.eval()
            row["val_loss"] = validation_loss(model, val_set, device)
            row.update(evaluate_detector(Detector(model, inference_settings(model, cfg.img_size, cfg.threshold, cfg.top_k), device), val_samples, cfg.match_px))
        row["seconds"] = time.time() - started
        history.append(row)

        key = (row["val_f1"], row["val_ap"], -row["val_loss"]) if val_samples else (-row["train_loss"],)
        threshold = row.get("val_threshold", cfg.threshold) if cfg.tune_threshold else cfg.threshold
        save_checkpoint(make_checkpoint(model, cfg, threshold, epoch, row, optimizer, scheduler), out / "last.pt")
        if key > best_key:
            best_key, best_threshold_value = key, threshold
            save_checkpoint(make_checkpoint(model, cfg, threshold, epoch, row), out / "best.pt")
        write_log(history, out / "log.csv")
        plot_losses(history, out / "loss.png")
        print(_epoch_line(row, cfg.epochs), flush=True)

    print(f"pinpoint train: best epoch {_best_epoch(history, val_samples)} (threshold {best_threshold_value:.3f}); "
          f"weights in {out / 'best.pt'} and {out / 'last.pt'}")
    return out


@torch.no_grad()
def validation_loss(model: torch.nn.Module, dataset: TrainingSet, device: torch.device) -> float:
    """The training loss on whole validation images, prepared as inference prepares them."""
    losses = []
    for i in range(len(dataset)):
        image, target, weight = (t[None].to(device) for t in dataset.whole(i, model.stride))
        pred = model(image)
        losses.append((heatmap_loss(pred, target, dataset.cfg.loss) if model.output == "heatmap" else point_loss(pred, target, weight)).item())
    return float(np.mean(losses))


def write_log(history: list[dict[str, Any]], path: Path) -> None:
    columns = list(dict.fromkeys(k for row in history for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    write_text(path, buffer.getvalue())


def plot_losses(history: list[dict[str, Any]], path: Path) -> None:
    from pinpoint.viz import plot_curves

    plot_curves(history, path)


def _epoch_line(row: dict[str, Any], epochs: int) -> str:
    parts = [f"epoch {row['epoch']}/{epochs}", f"lr {row['lr']:.2e}", f"train loss {row['train_loss']:.5f}"]
    if "val_loss" in row:
        parts += [f"val loss {row['val_loss']:.5f}", f"val F1 {row['val_f1']:.3f}", f"val AP {row['val_ap']:.3f}"]
    parts.append(f"{row['seconds']:.1f}s")
    return "  ".join(parts)


def _best_epoch(history: list[dict[str, Any]], has_val: bool) -> int:
    if has_val:
        return max(history, key=lambda r: (r["val_f1"], r["val_ap"], -r["val_loss"]))["epoch"]
    return min(history, key=lambda r: r["train_loss"])["epoch"]


def _json(values: dict[str, Any]) -> str:
    import json

    return json.dumps(values, indent=2) + "\n"
