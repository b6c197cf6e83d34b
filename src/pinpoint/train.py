"""train(cfg) -> run folder. A loop you can read top to bottom.

Each epoch: shuffle, augment, step the optimizer over the training split; step the schedule;
score the validation split as a detector (F1 at cfg.match_px, AP), which sets the detection
threshold stored as the default of `detect`; write last.pt and best.pt (the weights to use: the
final epoch's), the CSV log and the loss curve. Once training ends, the detection thresholds are cut
on every training and validation image and stored in best.pt (store_thresholds).

Several processes (torchrun): cfg.batch is the GLOBAL batch. Each process takes its share of
every global batch and DistributedDataParallel averages the gradients, with BatchNorm statistics
synchronised, so N processes take the same steps as one process with the same batch. Rank 0
alone validates and writes files; the others wait at a barrier.

With cfg.ema > 0 an exponential moving average of the weights (decay ramped up over the first
steps) is what gets validated and saved for inference: it averages out the last epochs'
step-to-step jitter.

Crash safety: last.pt is replaced atomically at every epoch end, and every cfg.save_every_steps
batches inside an epoch, with all it takes to go on: weights, optimizer, schedule, loss scaler,
epoch and batch within it, every process's RNG states and the history. resume(run_dir) continues
from there; in deterministic mode on the CPU the result equals an uninterrupted run bit for bit.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from pinpoint import distributed
from pinpoint.checkpoints import load_checkpoint, save_checkpoint
from pinpoint.codecs.snap import snap_and_merge
from pinpoint.config import TrainConfig
from pinpoint.data.dataset import (EpochSampler, Sample, TrainingSet, box_classes, dataset_stems, format_skipped, label_kind,
                                   load_stems)
from pinpoint.data.mixture import DatasetSpec, MixtureSampler, check_named_classes, is_dataset_file, read_dataset_file
from pinpoint.data.videos import is_video_dataset, load_video_frames, video_stems
from pinpoint.errors import InputError
from pinpoint.files import numbered_folder, remove_stale_temporaries, write_text
from pinpoint.losses import heatmap_loss_terms, point_loss_terms
from pinpoint.metrics import best_threshold, evaluate, outside_ignored
from pinpoint.models.registry import count_parameters, create_model
from pinpoint.outputs import prepare_output_folder
from pinpoint.points import Points
from pinpoint.predict import Detector, inference_settings, tta_views


def train(cfg: TrainConfig, state: dict[str, Any] | None = None) -> Path:
    """Train a model as `cfg` says; returns the run folder with best.pt, last.pt, log.csv and loss.png.

    Under torchrun, every process calls this with the same `cfg`. `state` is a last.pt checkpoint
    to continue from (see resume()).
    """
    cfg.check()
    cluster = distributed.start(cfg.device)
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        # rank 0 alone looks at the run folder (a slower rank could see the files rank 0 has begun to
        # write) and tells the others what it decided, a refusal included, so that none waits forever
        decision = None
        created: list[Path] = []
        if cluster.is_main:
            try:
                out, created = run_folder(cfg, resuming=state is not None)
                decision = (out, None)
            except InputError as exc:
                decision = (cfg.out, str(exc))
        out, problem = distributed.gather_objects(decision)[0]
        if problem:
            raise InputError(problem)
        try:
            return _train(dataclasses.replace(cfg, out=out), cluster, state)  # the caller's config is left as it was
        except BaseException:
            if cluster.is_main and state is None:
                discard_unstarted_run(Path(out), created)
            raise
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
        distributed.stop(cluster)


def resume(run_dir: str | os.PathLike, device: str | None = None, workers: int | None = None,
           progress: bool | None = None) -> Path:
    """Continue the run in `run_dir` from its last.pt, with the settings it was started with.

    Only where it runs may change (device, data-loading workers, progress bar), not what it learns.
    """
    run_dir = Path(run_dir)
    state = read_checkpoint(run_dir / "last.pt")
    cfg = TrainConfig.from_dict(state["config"], str(run_dir / "last.pt"))
    cfg.out = str(run_dir)
    cfg.device = cfg.device if device is None else device
    cfg.workers = cfg.workers if workers is None else workers
    cfg.progress = cfg.progress if progress is None else progress
    return train(cfg, state)


def _train(cfg: TrainConfig, cluster: distributed.Cluster, state: dict[str, Any] | None) -> Path:
    device, main = cluster.device, cluster.is_main
    batch = batch_per_process(cfg.batch, cluster.world_size)
    seed_everything(cfg.seed)
    if cfg.deterministic:
        make_deterministic(device)
    amp = autocast_dtype(cfg.amp, device)
    channels_last = cfg.channels_last and device.type == "cuda"
    out = Path(cfg.out)

    model = create_model(cfg.model, **cfg.model_args).to(device)
    check_settings(cfg, model)  # before reading a large dataset, so a wrong setting fails at once
    if cfg.init and state is None:  # a resumed run's own weights come from its last.pt
        load_initial_weights(model, cfg.init)
    skipped: list[str] | None = [] if cfg.skip_bad else None
    datasets = [load_dataset(spec, cfg, skipped) for spec in training_datasets(cfg)]
    train_samples = [sample for d in datasets for sample in d.train]
    val_samples = [sample for d in datasets for sample in d.val]
    if not train_samples:
        raise InputError(f"{cfg.data}: no usable training image ({len(skipped or [])} bad file(s) skipped)")
    val_groups = validation_groups(datasets)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if not any(len(sample.xy) for sample in train_samples + val_samples) and not any(synth_rate(d.spec, cfg) for d in datasets):
        raise InputError(f"{cfg.data}: no target in any image (a folder without labels/ is read as backgrounds); "
                         "a run needs targets to learn: labels/NAME.txt beside the images, or --synth-targets")
    dataset = TrainingSet(train_samples, cfg, model.output, seed=cfg.seed,
                          synth_targets=[synth_rate(d.spec, cfg) for d in datasets for _ in d.train])
    val_set = TrainingSet(val_samples, cfg, model.output, seed=cfg.seed)
    if len(datasets) == 1:
        sampler = EpochSampler(len(dataset), cluster.world_size, cluster.rank, cfg.seed, batch)
    else:  # each dataset's share of an epoch by its weight, not its size
        sampler = MixtureSampler([len(d.train) for d in datasets], [d.spec.weight for d in datasets], cfg.epoch_size,
                                 cluster.world_size, cluster.rank, cfg.seed, batch)
    # Not persistent_workers: workers copy the dataset when an epoch's iteration starts, which is
    # how they learn the epoch number that seeds the augmentation.
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch, sampler=sampler, num_workers=cfg.workers, drop_last=len(dataset) >= cfg.batch,
        generator=torch.Generator().manual_seed(cfg.seed), pin_memory=device.type == "cuda")
    ema = AveragedModel(model, multi_avg_fn=ema_update(cfg.ema), use_buffers=True) if cfg.ema else None
    final = ema.module if ema else model  # the weights that are validated and that inference gets
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scheduler = make_scheduler(cfg, optimizer)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)  # fp16 gradients underflow without it

    history: list[dict[str, Any]] = []
    threshold = cfg.threshold
    start_epoch, start_batch, carried_loss = 1, 0, 0.0
    if state is not None:
        model.load_state_dict(state["trained_model"] if ema else state["model"])
        if ema:
            ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state["scaler"]:  # empty when the run began without fp16
            scaler.load_state_dict(state["scaler"])
        history, threshold = state["history"], state["inference"]["threshold"]
        start_epoch, start_batch = state["epoch"] + 1, state["step"]
        processes = state["processes"]
        set_rng_state(processes[cluster.rank if cluster.rank < len(processes) else 0]["rng"], device)
        carried_loss = float(np.mean([p["loss_sum"] for p in processes]))  # the epoch loss is a mean over processes
    net = distributed.wrap(model, cluster)
    if main:
        write_text(out / "config.json", _json(cfg.to_dict()))
        where = f"{cluster.world_size} processes on {device.type} (batch {cfg.batch} = {cluster.world_size} x {batch})" \
            if cluster.distributed else str(device)
        print(f"pinpoint train: {cfg.model} ({count_parameters(model):,} parameters) on {where}, "
              f"{len(train_samples)} training / {len(val_samples)} validation images -> {out}"
              + "".join(f"\n  {d.spec.name}: {len(d.train)} training / {len(d.val)} validation, weight {d.spec.weight:g}"
                        + describe_labels(d.spec, cfg) for d in datasets if len(datasets) > 1)
              + (f"; continuing after epoch {start_epoch - 1}, batch {start_batch}" if state else "")
              + (f"; {len(skipped)} bad file(s) skipped, listed at the end" if skipped else ""), flush=True)

    for epoch in range(start_epoch, cfg.epochs + 1):
        started = time.time()
        first = start_batch if epoch == start_epoch else 0  # batches a resumed epoch already did
        total, batches = (carried_loss, first) if epoch == start_epoch else (0.0, 0)
        net.train()
        dataset.set_epoch(epoch)
        sampler.set_epoch(epoch, first)
        steps = first + len(loader)
        bar = tqdm(loader, desc=f"epoch {epoch}/{cfg.epochs}", initial=first, total=steps, leave=False,
                   disable=not (cfg.progress and main))
        for images, targets, weights in bar:
            images = images.to(device, non_blocking=True, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
            targets, weights = targets.to(device, non_blocking=True), weights.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                pred = net(images)
            loss = training_loss(model.output, pred.float(), targets, weights, cfg.loss)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            if ema:
                ema.update_parameters(model)
            total += loss.item()
            batches += 1
            bar.set_postfix(loss=f"{total / batches:.5f}")
            if cfg.save_every_steps and batches % cfg.save_every_steps == 0 and batches < steps:
                processes = distributed.gather_objects(process_state(total, device))
                if main:  # mid-epoch: `epoch - 1` epochs done, plus `batches` batches of this one
                    save_checkpoint({**make_checkpoint(final, cfg, threshold, epoch - 1, history[-1] if history else {}),
                                     **resumable_state(optimizer, scheduler, scaler, batches, processes, history, model, ema)},
                                    out / "last.pt")
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        processes = distributed.gather_objects(process_state(0.0, device))
        train_loss = distributed.mean_over_processes(total / max(batches, 1), device)

        if main:
            row: dict[str, Any] = {"epoch": epoch, "lr": lr, "train_loss": train_loss}
            if val_samples:
                final.eval()
                row["val_loss"] = validation_loss(final, val_set, device)
                # plain heatmaps: the threshold for averaged ones is chosen once, for the weights kept (store_thresholds)
                settings = inference_settings(final, cfg.img_size, cfg.threshold, cfg.top_k, False, cfg.nms_kernel, cfg.snap)
                row.update(evaluate_detector(Detector(final, settings, device), val_samples, cfg.match_px,
                                             cfg.threshold_smoothing, val_groups))
            row["seconds"] = time.time() - started
            history.append(row)

            threshold = row.get("val_threshold", cfg.threshold)
            checkpoint = make_checkpoint(final, cfg, threshold, epoch, row)
            save_checkpoint(checkpoint, out / "best.pt")  # the final epoch's weights, once training ends
            save_checkpoint({**checkpoint, **resumable_state(optimizer, scheduler, scaler, 0, processes, history, model, ema)},
                            out / "last.pt")
            write_log(history, out / "log.csv")
            plot_losses(history, out / "loss.png")
            print(_epoch_line(row, cfg.epochs), flush=True)
        distributed.barrier()

    if main:
        chosen: dict[str, float] = {}
        cut_on = threshold_samples(datasets, cfg.seed)
        started = time.time()
        if model.output == "heatmap":
            chosen = store_thresholds(out / "best.pt", cut_on, cfg, device)
        plain = chosen.get("threshold", threshold)
        print(f"pinpoint train: kept epoch {history[-1]['epoch'] if history else 0} (threshold {plain:.3f}"
              + (f", {chosen['tta_threshold']:.3f} with --tta" if "tta_threshold" in chosen else "")
              + (f"; chosen on {len(cut_on)} images in {time.time() - started:.0f} s" if chosen else "")
              + f"); weights in {out / 'best.pt'} and {out / 'last.pt'}")
        if skipped:
            write_text(out / "skipped.txt", "\n".join(skipped) + "\n")
            print(format_skipped(skipped, "pinpoint train"))
    return out


RUN_FILES = ("best.pt", "last.pt", "log.csv", "loss.png", "config.json", "skipped.txt")  # what a run folder holds
DEFAULT_RUNS = Path("runs") / "train"  # cfg.out "" means the first free one of runs/train, runs/train2, ...


def run_folder(cfg: TrainConfig, resuming: bool) -> tuple[str, list[Path]]:
    """The run folder to write, decided before any work, and the folders made for it (deepest
    first; discard_unstarted_run removes them again if the run stops before its first
    checkpoint); an InputError says why not.

    An --out that already holds a run is refused, so that best.pt and last.pt are never replaced
    without a word: go on with it (--resume), replace it (--overwrite, which first removes the
    old run's files) or choose another folder. Without --out, the first free folder of
    runs/train, runs/train2, ... is taken, as other training tools do.
    """
    if resuming:
        remove_stale_temporaries(cfg.out)  # what the killed run was writing when it stopped
        return cfg.out, []
    if not cfg.out:
        missing = _missing_folders(DEFAULT_RUNS.parent)
        before = set(DEFAULT_RUNS.parent.iterdir()) if DEFAULT_RUNS.parent.is_dir() else set()
        out = numbered_folder(DEFAULT_RUNS)
        return str(out), ([out] if out not in before else []) + missing
    missing = _missing_folders(Path(cfg.out))
    out = prepare_output_folder(cfg.out, "--out", [cfg.data, cfg.init, cfg.split, cfg.val_split])
    held = [name for name in RUN_FILES if (out / name).exists()]
    if held and not cfg.overwrite:
        raise InputError(f"{out}: holds a run already ({', '.join(held)}); continue it with --resume {out}, "
                         f"replace it with --overwrite, or choose another --out")
    for name in held:
        (out / name).unlink()
    return cfg.out, missing


def _missing_folders(folder: Path) -> list[Path]:
    """`folder` and the folders above it that do not exist yet, deepest first."""
    return [p for p in (folder, *folder.parents) if not (p.exists() or p.is_symlink())]


def discard_unstarted_run(out: Path, created: list[Path]) -> None:
    """A run stopped (refused data, Ctrl+C, a crash) before its first checkpoint leaves nothing
    behind: its config.json goes, and so do the folders it made, if nothing else is in them. A
    run with a last.pt is kept: it can be resumed."""
    if (out / "last.pt").exists():
        return
    (out / "config.json").unlink(missing_ok=True)
    for folder in created:
        try:
            folder.rmdir()  # only when empty: a file put there meanwhile is not ours to delete
        except OSError:
            return


def check_settings(cfg: TrainConfig, model: torch.nn.Module) -> None:
    """Settings that would fail only later, deep inside an epoch or its validation, refused up front.
    Each setting's own limits are TrainConfig.check's (config.RULES); this one depends on the model."""
    if not cfg.img_size and cfg.crop_size % model.stride:
        raise InputError(f"--crop-size {cfg.crop_size}: {cfg.model} needs a multiple of {model.stride}")


def load_flag_checkpoint(flag: str, path: str, device: str) -> Detector:
    """A checkpoint given to a training flag; a missing file or a non-checkpoint is Detector.load's
    one-line error, under the flag's name."""
    try:
        return Detector.load(path, device)
    except InputError as exc:
        raise InputError(f"{flag} {exc}") from None


def load_initial_weights(model: torch.nn.Module, path: str) -> None:
    """Start from a trained checkpoint's weights instead of random ones: fine-tuning on new labels,
    or on a user's own images after training elsewhere. Only the weights carry over; the
    optimizer, schedule and threshold start afresh with this run's settings."""
    source = load_flag_checkpoint("--init", path, "cpu")
    if source.model is None:
        raise InputError(f"--init {path}: an exported ONNX file has no trainable weights; give the run's best.pt or last.pt")
    theirs, ours = source.model.state_dict(), model.state_dict()
    if theirs.keys() != ours.keys() or any(theirs[k].shape != ours[k].shape for k in ours):
        raise InputError(f"--init {path}: its network ({source.name}) is not the one being trained; "
                         f"train with the --model and model arguments it was trained with")
    model.load_state_dict(theirs)


def batch_per_process(global_batch: int, world_size: int) -> int:
    """Each process's share of the global batch; it must split evenly for the steps to match one process's."""
    if global_batch < 1 or global_batch % world_size:
        raise InputError(f"--batch {global_batch}: the global batch must split evenly over {world_size} process(es)")
    return global_batch // world_size


def ema_update(decay: float):
    """multi_avg_fn for AveragedModel: average <- d * average + (1 - d) * weights, d = min(decay, (1 + n) / (10 + n)).

    The ramp (n = updates so far) lets the average follow the fast early changes instead of
    dragging the random initial weights along for thousands of steps. AveragedModel calls this
    once per group of tensors of one device and dtype; integer buffers (BatchNorm's batch
    counter) are copied.
    """
    def update(averages: list[torch.Tensor], currents: list[torch.Tensor], n: torch.Tensor) -> None:
        if not averages[0].is_floating_point():
            for average, current in zip(averages, currents):
                average.copy_(current)
            return
        done = float(n)
        d = min(decay, (1.0 + done) / (10.0 + done))
        for average, current in zip(averages, currents):
            average.lerp_(current, 1.0 - d)

    return update


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_deterministic(device: torch.device) -> None:
    """Same inputs, same bits: exact on the CPU. CUDA has kernels with no deterministic version
    (bilinear upsampling's backward): they warn instead of stopping the run."""
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS starts
        torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The mixed-precision type for `--amp`: auto = bf16 on GPUs that have it, else fp16; off on the CPU,
    where lower precision saves no time for these small convolutions."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if amp == "bf16":
        return torch.bfloat16
    if amp == "fp16":
        if device.type != "cuda":
            raise InputError("--amp fp16: half precision needs a CUDA device; use --amp bf16 or off on the CPU")
        return torch.float16
    raise InputError(f"--amp {amp}: choose auto, off, bf16 or fp16")


def make_scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(cfg.epochs, 1), eta_min=cfg.lr * 0.01)
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(cfg.lr_step, 1), gamma=cfg.lr_gamma)
    raise ValueError(f"unknown schedule {cfg.schedule!r}; choose step or cosine")


def training_loss(output: str, pred: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, kind: str,
                  across_processes: bool = True) -> torch.Tensor:
    """The loss of this process's share of the global batch, normalised over the whole global batch.

    DDP averages gradients over the N processes, so the share's sum of terms is scaled by N and
    divided by the global normaliser: N processes then optimise exactly the loss of one process
    that sees the whole batch (the focal loss divides by the number of targets, which differs per share).
    """
    if output == "heatmap":  # weights: a map per image, 0 on ignored regions
        total, normaliser = heatmap_loss_terms(pred, targets, kind, weights)
    else:
        total, normaliser = point_loss_terms(pred, targets, weights)
    if not across_processes or distributed.world_size() == 1:
        return total / normaliser.clamp(min=1)
    return total * distributed.world_size() / distributed.sum_over_processes(normaliser).clamp(min=1)


def split_stems(cfg: TrainConfig, skipped: list[str] | None = None) -> tuple[list[str], list[str]]:
    """Training and validation stems; without a val split, a seeded share of the training split."""
    stems = dataset_stems(cfg.data, cfg.split, skipped)
    val = dataset_stems(cfg.data, cfg.val_split) if cfg.val_split else None
    return held_out(stems, val, cfg.val_split, cfg.val_fraction, cfg.seed)


def held_out(stems: list[str], val: list[str] | None, val_split: str | os.PathLike | None, fraction: float,
             seed: int) -> tuple[list[str], list[str]]:
    """(training, validation): the given validation list (none of it also in training), or a share carved out."""
    if val is None:
        return carve(stems, fraction, seed)
    overlap = sorted(set(val) & set(stems))
    if overlap:
        raise InputError(f"{val_split}: {len(overlap)} stem(s) also in the training split, e.g. {overlap[0]}")
    return stems, val


def carve(stems: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(kept, held out): a seeded `fraction` of `stems` (at least one, when there are two or more) held out."""
    if len(stems) < 2 or fraction <= 0:
        return stems, []
    order = np.random.default_rng(seed).permutation(len(stems))
    n_val = max(1, int(round(len(stems) * fraction)))
    val = sorted(stems[i] for i in order[:n_val])
    held = set(val)
    return [s for s in stems if s not in held], val


@dataclass
class LoadedDataset:
    """One dataset of a run, read into memory: its training and validation samples."""

    spec: DatasetSpec
    train: list[Sample]
    val: list[Sample]


def training_datasets(cfg: TrainConfig) -> list[DatasetSpec]:
    """The datasets of a run: those of a dataset file (data/mixture.py), or the one folder --data names."""
    if is_dataset_file(cfg.data):
        if cfg.split or cfg.val_split:
            raise InputError(f"{cfg.data}: --split and --val-split go into the dataset file, one per [[dataset]]")
        return read_dataset_file(cfg.data)
    folder = Path(cfg.data)
    return [DatasetSpec(folder.resolve().name, folder, Path(cfg.split) if cfg.split else None,
                        Path(cfg.val_split) if cfg.val_split else None)]


def load_dataset(spec: DatasetSpec, cfg: TrainConfig, skipped: list[str] | None) -> LoadedDataset:
    """A dataset's training and validation samples: images (validation carved from the training
    images unless given) or video frames (validation carved as whole videos: the frames of one
    video are near-copies, so held-out frames of a trained video would not test anything new)."""
    if is_video_dataset(spec.path):
        given = video_stems(spec.path, spec.val_split, skipped) if spec.val_split else None
        stems, val = held_out(video_stems(spec.path, spec.split, skipped), given, spec.val_split, cfg.val_fraction, cfg.seed)
        every = spec.every or cfg.every
        return LoadedDataset(spec, load_video_frames(spec.path, stems, every, skipped),
                             load_video_frames(spec.path, val, every, skipped))
    one = dataclasses.replace(cfg, data=str(spec.path), split=spec.split and str(spec.split),
                              val_split=spec.val_split and str(spec.val_split))
    train_stems, val_stems = split_stems(one, skipped)
    if label_kind(spec.path) == "boxes":  # first: a misnamed class explains the rows it leaves uncovered
        check_named_classes(spec, box_classes(spec.path, train_stems + val_stems))
    return LoadedDataset(spec, load_stems(spec.path, train_stems, skipped, spec.classes),
                         load_stems(spec.path, val_stems, skipped, spec.classes))


def synth_rate(spec: DatasetSpec, cfg: TrainConfig) -> float:
    """The chance that a training crop of this dataset gets synthetic targets: its own, or the run's."""
    return cfg.synth_targets if spec.synth_targets is None else spec.synth_targets


def describe_labels(spec: DatasetSpec, cfg: TrainConfig) -> str:
    """How a dataset is labelled and whether synthetic targets join it, for the run's opening lines."""
    kind = label_kind(spec.path)
    said = {"labels": "", "backgrounds": ", backgrounds only", "boxes": f", boxes ({spec.classes.describe()})"}[kind]
    rate = synth_rate(spec, cfg)
    return said + (f", synthetic targets in {rate:.0%} of crops" if rate else "")


def validation_groups(datasets: list[LoadedDataset]) -> list[tuple[str, slice]]:
    """Where each dataset's validation samples sit in the pooled list; none for a single dataset."""
    groups, start = [], 0
    for d in datasets:
        groups.append((d.spec.name, slice(start, start + len(d.val))))
        start += len(d.val)
    return groups if len(datasets) > 1 else []


THRESHOLD_IMAGES = 2000  # the thresholds are cut on at most this many images in all (docs/research-log.md, issue 39)


def threshold_samples(datasets: list[LoadedDataset], seed: int) -> list[Sample]:
    """The images the stored thresholds are cut on: every training and validation image of the run,
    or past THRESHOLD_IMAGES, the same seeded share of each dataset's (at least one image of each).

    Why the same share of each: the cut is meant to be the one every image gives, and a sample that
    keeps the datasets' proportions gives it within its sampling noise. A cap per dataset (at most
    1,000 of each, until issue 39) weighs a small dataset as much as a large one instead, and moved
    the cut by 0.06 on a run of four datasets (docs/research-log.md)."""
    total = sum(len(d.train) + len(d.val) for d in datasets)
    chosen = []
    for d in datasets:
        images = d.train + d.val
        if total > THRESHOLD_IMAGES and images:
            count = max(1, round(len(images) * THRESHOLD_IMAGES / total))
            keep = np.sort(np.random.default_rng(seed).choice(len(images), count, replace=False))
            images = [images[i] for i in keep]
        chosen.extend(images)
    return chosen


def evaluate_detector(detector: Detector, samples: list[Sample], match_px: float, smooth: float = 0.0,
                      groups: Sequence[tuple[str, slice]] = ()) -> dict[str, Any]:
    """Validation F1 at its best threshold (so epochs compare on the best they can do), AP, the
    threshold to store (the best one, or with `smooth` the centre of the best plateau: best_threshold)
    and whether to snap points to their blobs. With `groups` (a dataset's name and where its
    samples sit), also each dataset's F1 at that threshold, as `val_f1_NAME`, or for a dataset
    without targets (backgrounds) its false alarms an image, as `val_fa_NAME`.

    When the detector's settings allow snapping, validation runs with and without it, and snapping
    is kept only if it raises F1, or keeps F1 and lowers the mean localisation error. It refines positions,
    and it does so only where targets are blobs standing clear of their surroundings. On faint
    targets in noise the half-maximum blob around a peak is mostly noise: on the synthetic demo data
    it raised the error from 0.21 to 0.24 px and cost two of 86 targets.
    """
    gts = ground_truth(samples)
    allowed = bool(detector.settings.get("snap"))
    peaks_only = Detector(detector.model, {**detector.settings, "snap": False}, detector.device, detector.name, detector.backend)
    unsnapped = [outside_ignored(peaks_only.predict(sample.image, conf=0.01), sample.ignore) for sample in samples]
    variants = [(False, unsnapped)]
    if allowed:  # the snapped points are the same peaks, moved: no second pass through the network
        merge = detector.settings["nms_kernel"] // 2
        variants.append((True, [Points(*snap_and_merge(sample.image, p.xy, p.score, merge), p.image_size)
                                for p, sample in zip(unsnapped, samples)]))
    results = []
    for snap, preds in variants:
        scores = evaluate(preds, gts, (match_px,))[match_px]
        try:
            choice = best_threshold(preds, gts, match_px, smooth)
            f1, threshold = float(choice.f1_curve.max()), choice.threshold
        except ValueError:  # no targets or no predictions in the validation images
            f1, threshold = 0.0, detector.threshold
        ap = scores.AP if math.isfinite(scores.AP) else 0.0
        results.append({"val_f1": f1, "val_ap": ap, "val_threshold": threshold, "val_snap": int(snap),
                        "loc": scores.loc_error_px})
    plain, snapped = results[0], results[-1]
    better = snapped["val_f1"] > plain["val_f1"] or (snapped["val_f1"] == plain["val_f1"] and snapped["loc"] < plain["loc"])
    chosen = snapped if allowed and better else plain
    row = {key: value for key, value in chosen.items() if key != "loc"}
    preds = variants[-1][1] if chosen is snapped and allowed else unsnapped
    for name, where in groups:
        scores = evaluate(preds[where], gts[where], (match_px,), score_threshold=row["val_threshold"])[match_px]
        if scores.targets:
            row[f"val_f1_{name}"] = scores.F1
        else:  # backgrounds: F1 is 0 or undefined there, what tells is how often the model fires
            row[f"val_fa_{name}"] = scores.false_alarms_per_image
    return row


# The lowest peak score kept as a candidate cut. Points under it are the bulk of an image's peaks
# (at 0.01, decoding them took 3 times the network's time), and the cut it gives is exact from the
# floor plus --threshold-smoothing up (0.15 by default; runs' cuts lie at 0.3 to 0.5). A cut below
# that (a weak model: a short run, a few labels) is made again from points down to LOW_CUT_FLOOR.
CUT_FLOOR = 0.05
LOW_CUT_FLOOR = 0.01


def store_thresholds(path: Path, samples: list[Sample], cfg: TrainConfig, device: torch.device) -> dict[str, float]:
    """Choose the score cuts of the checkpoint at `path` on `samples` (best F1, smoothed, with the
    checkpoint's snap choice) and store them in it: `threshold` for plain heatmaps and, for a run
    trained with --tta, `tta_threshold` for heatmaps averaged over the model's views, which detect
    and eval use with --tta. Returns what was stored (nothing without targets or points to cut).

    The images are streamed through the network one at a time and only their candidate points
    (at most the cap of points an image, down to CUT_FLOOR) are kept: memory stays that of one
    image's pass whatever the number and size of the images, and the time is one pass per image
    (one per view with --tta, both cuts from the same passes). A progress bar shows it. Until
    issue 39 each cut ran the images of one size as one batch: 16 minutes and 12.6 GB for 2,831
    images, where this takes seconds and tens of MB (docs/research-log.md).

    Why on every training image, not the validation images alone: a 10% validation split of
    NUAA-SIRST holds about 25 targets, and F1 moves by 0.02 to 0.04 per target, so its best cut is
    often one lucky step. Over 42 finished runs, the cut made on the whole training split gave
    test F1 0.002 higher on average and never lost more than 0.012 to the best test cut, against
    0.038 for the validation cut (docs/research-log.md, "Where to cut"). The network has fitted the
    training images, but at 100 epochs only to F1 0.948 on them: their scores are not much
    higher than on new images.
    Why a threshold of its own for --tta: averaging lowers the peaks the views disagree on, faint
    targets among them, so the plain threshold cuts averaged heatmaps too high. On the demo's data,
    --tta at the plain threshold (0.48) found 48 of 86 test targets, at its own (0.37) 54: F1 0.711
    against 0.761. It is cut only for a run trained with --tta: its 8 passes an image would
    otherwise make this step cost more than the training itself (docs/research-log.md, issue 39).
    """
    detector = Detector.load(path, device=str(device))
    detector.settings["tta"] = False
    truth = ground_truth(samples)
    for floor in (CUT_FLOOR, LOW_CUT_FLOOR):
        found = candidate_points(detector, samples, floor, cfg.tta, cfg.progress)
        chosen: dict[str, float] = {}
        for key, points in found.items():
            try:
                chosen[key] = best_threshold(points, truth, cfg.match_px, cfg.threshold_smoothing).threshold
            except ValueError:  # no targets or no points: the checkpoint keeps what it has
                pass
        if all(cut >= floor + cfg.threshold_smoothing for cut in chosen.values()):
            break
    if chosen:
        ckpt = load_checkpoint(path)
        ckpt["inference"].update(chosen)
        save_checkpoint(ckpt, path)
    return chosen


def candidate_points(detector: Detector, samples: list[Sample], floor: float, tta: bool,
                     progress: bool) -> dict[str, list[Points]]:
    """Each image's points down to `floor`, of the plain heatmap ("threshold") and with `tta` of the
    averaged one too ("tta_threshold", from the same passes), streamed one image at a time."""
    found: dict[str, list[Points]] = {"threshold": []} | ({"tta_threshold": []} if tta else {})
    for sample in tqdm(samples, desc="thresholds", unit="img", leave=False, disable=not progress):
        if tta:
            plain, averaged = detector.predict_plain_and_averaged(sample.image, floor)
            found["tta_threshold"].append(outside_ignored(averaged, sample.ignore))
        else:
            plain = detector.predict(sample.image, conf=floor)
        found["threshold"].append(outside_ignored(plain, sample.ignore))
    return found


def add_tta_threshold(run_dir: str | os.PathLike) -> None:
    """Cut the threshold for averaged heatmaps (--tta) of a finished run trained without --tta, as
    training with it would have (on the same images, from the same passes as the plain one), and
    store it in its best.pt, whose default decoding is left as it was. For the benchmarks that
    score a plain run with --tta too, and for shipping a model that --tta must work on."""
    run_dir = Path(run_dir)
    if "tta_threshold" in load_checkpoint(run_dir / "best.pt")["inference"]:
        return
    cfg = dataclasses.replace(TrainConfig.from_dict(read_checkpoint(run_dir / "last.pt")["config"], str(run_dir / "last.pt")),
                              tta=True, progress=False)
    samples = threshold_samples([load_dataset(spec, cfg, None) for spec in training_datasets(cfg)], cfg.seed)
    store_thresholds(run_dir / "best.pt", samples, cfg, torch.device("cpu"))


def ground_truth(samples: list[Sample]) -> list[Points]:
    """Each sample's labelled points, scored 1: what predictions are matched against."""
    return [sample.truth for sample in samples]


@torch.no_grad()
def validation_loss(model: torch.nn.Module, dataset: TrainingSet, device: torch.device) -> float:
    """The training loss on whole validation images, prepared as inference prepares them."""
    losses = []
    for i in range(len(dataset)):
        image, target, weight = (t[None].to(device) for t in dataset.whole(i, model.stride))
        losses.append(training_loss(model.output, model(image), target, weight, dataset.cfg.loss, across_processes=False).item())
    return float(np.mean(losses))


def make_checkpoint(model: torch.nn.Module, cfg: TrainConfig, threshold: float, epoch: int,
                    metrics: dict[str, Any]) -> dict[str, Any]:
    """A plain dict: weights, how to rebuild and run the model, and which epoch they are from."""
    return {
        "model": model.state_dict(),
        "model_name": cfg.model,
        "model_args": cfg.model_args,
        "inference": inference_settings(model, cfg.img_size, threshold, cfg.top_k, cfg.tta, cfg.nms_kernel,
                                        bool(metrics.get("val_snap", cfg.snap)), tta_views(cfg.flip, cfg.vflip, cfg.rot90)),
        "config": cfg.to_dict(),
        "epoch": epoch,
        "metrics": metrics,
        "pinpoint_version": 1,
    }


def resumable_state(optimizer: torch.optim.Optimizer, scheduler, scaler: torch.amp.GradScaler, step: int,
                    processes: list[dict[str, Any]], history: list[dict[str, Any]], model: torch.nn.Module,
                    ema: AveragedModel | None) -> dict[str, Any]:
    """What last.pt holds besides the weights so that training can go on as if never stopped.

    `step` is the number of batches done in the epoch after the checkpoint's `epoch` (0 at an
    epoch's end); `processes` holds each process's RNG states and its running loss sum. With a
    weight average, "model" holds the average (for inference) and "trained_model" the weights
    the optimizer steps.
    """
    averaged = {"trained_model": model.state_dict(), "ema": ema.state_dict()} if ema else {}
    return {**averaged,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "step": step,
        "processes": processes,
        "history": list(history),
    }


def process_state(loss_sum: float, device: torch.device) -> dict[str, Any]:
    """This process's part of a resumable checkpoint: its random generators and running loss sum."""
    return {"rng": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None},
            "loss_sum": loss_sum}


def set_rng_state(rng: dict[str, Any], device: torch.device) -> None:
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    if device.type == "cuda" and rng["cuda"] is not None:
        torch.cuda.set_rng_state(rng["cuda"], device)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A last.pt to resume from; anything else is an InputError naming it."""
    if not path.is_file():
        raise InputError(f"{path}: no checkpoint to resume from (expected RUN_DIR/last.pt)")
    state = load_checkpoint(path)
    missing = [k for k in ("config", "optimizer", "scheduler", "scaler", "step", "processes", "history") if k not in state]
    if missing:
        raise InputError(f"{path}: not a resumable checkpoint (no {', '.join(missing)}); resume from a run's last.pt")
    if not isinstance(state["config"], dict):
        raise InputError(f"{path}: not a resumable checkpoint (its config is not a dict)")
    return state


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
        each = [f"{key[len('val_f1_'):]} {value:.3f}" for key, value in row.items() if key.startswith("val_f1_")]
        quiet = [f"{key[len('val_fa_'):]} {value:.2f}" for key, value in row.items() if key.startswith("val_fa_")]
        said = ([f"F1 {', '.join(each)}"] if each else []) + ([f"false alarms an image {', '.join(quiet)}"] if quiet else [])
        if said:
            parts.append(f"({'; '.join(said)})")
        if row.get("val_snap"):
            parts.append("snapped")
    parts.append(f"{row['seconds']:.1f}s")
    return "  ".join(parts)


def _json(values: dict[str, Any]) -> str:
    import json

    return json.dumps(values, indent=2) + "\n"
