"""Two CPU processes under torchrun train the same network as one process with the same global batch."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch import nn

from pinpoint.checkpoints import load_checkpoint
from pinpoint.data.dataset import EpochSampler
from pinpoint.distributed import CpuSyncBatchNorm, choose_device, convert_to_cpu_sync_batchnorm
from pinpoint.errors import InputError
from pinpoint.train import batch_per_process

SRC = Path(__file__).resolve().parents[1] / "src"
# 36 training images, global batch 8: 4 steps per epoch; crops of 32 keep each step a few milliseconds.
# The focal loss divides by the number of targets in the whole global batch (each process's share has
# another count), so this also checks the loss normalisation across processes. The seed heatmap model
# is pinned because its training is well conditioned (PinNet's first Adam steps amplify float summation
# order: one process with 1 or 2 threads already ends ~2 lr apart).
TRAIN_ARGS = ["--model", "heatmap", "--img-size", "0", "--crop-size", "32", "--sigma", "1.5", "--loss", "focal",
              "--epochs", "2", "--batch", "8", "--lr", "3e-3", "--device", "cpu", "--no-progress"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_epoch_sampler_shards_each_global_batch_across_processes() -> None:
    n, batch, seed, epoch = 37, 8, 5, 3
    single = EpochSampler(n, 1, 0, seed, batch)
    single.set_epoch(epoch)
    one = list(single)
    global_batches = [sorted(one[k * batch:(k + 1) * batch]) for k in range(n // batch)]
    for world in (2, 4):
        shards = []
        for rank in range(world):
            sampler = EpochSampler(n, world, rank, seed, batch // world)
            sampler.set_epoch(epoch)
            shards.append(list(sampler))
        for k, expected in enumerate(global_batches):
            step = sorted(i for shard in shards for i in shard[k * (batch // world):(k + 1) * (batch // world)])
            assert step == expected, (world, k)
    # resuming at batch 2 continues the same order
    single.set_epoch(epoch, first_batch=2)
    assert list(single) == one[16:] and len(single) == n - 16
    # the order is a function of (seed, epoch): another epoch shuffles differently
    single.set_epoch(epoch + 1)
    assert list(single) != one and sorted(single) == list(range(n))


def test_global_batch_must_split_evenly() -> None:
    assert batch_per_process(8, 2) == 4 and batch_per_process(16, 1) == 16
    with pytest.raises(InputError, match="--batch 10"):
        batch_per_process(10, 4)


def test_cpu_sync_batchnorm_equals_batchnorm_in_a_one_process_group() -> None:
    """The synchronised layer computes BatchNorm's outputs, gradients and running statistics."""
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU())
    synced = convert_to_cpu_sync_batchnorm(nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU()))
    synced.load_state_dict(plain.state_dict())
    assert isinstance(synced[1], CpuSyncBatchNorm)
    x = torch.randn(4, 2, 9, 7) * 3 + 1
    dist.init_process_group("gloo", rank=0, world_size=1, store=dist.HashStore())
    try:
        outputs = []
        for net in (plain, synced):
            y = net(x)
            (y * torch.linspace(0, 1, y.numel()).view_as(y)).sum().backward()
            outputs.append(y)
    finally:
        dist.destroy_process_group()
    torch.testing.assert_close(outputs[1], outputs[0], atol=1e-5, rtol=1e-5)
    for (name, a), b in zip(plain.named_parameters(), synced.parameters()):
        torch.testing.assert_close(b.grad, a.grad, atol=1e-5, rtol=1e-5, msg=name)
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(synced.state_dict()[key], value, atol=1e-6, rtol=1e-5, msg=key)
    assert int(synced[1].num_batches_tracked) == 1


def test_conversion_keeps_the_optimizer_tensors() -> None:
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    weight = net[1].weight
    convert_to_cpu_sync_batchnorm(net)
    assert net[1].weight is weight  # an optimizer built before wrapping still trains the layer


def test_device_names_are_checked() -> None:
    assert choose_device("cpu") == torch.device("cpu")
    with pytest.raises(InputError, match="--device gpu0"):
        choose_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            choose_device("cuda:0")


def test_two_processes_match_one(spot_data: Path, tmp_path: Path) -> None:
    data = ["--data", str(spot_data), "--split", str(spot_data / "train.txt"), "--val-split", str(spot_data / "val.txt")]
    env = {**os.environ, "PYTHONPATH": str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
    runs = {}
    for name, launcher in [("ddp", [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--nnodes", "1",
                                    "--rdzv-backend", "c10d", "--rdzv-endpoint", f"localhost:{free_port()}", "-m", "pinpoint"]),
                           ("single", [sys.executable, "-m", "pinpoint"])]:
        runs[name] = tmp_path / name
        result = subprocess.run([*launcher, "train", *data, *TRAIN_ARGS, "--out", str(runs[name])],
                                capture_output=True, text=True, env=env, timeout=240)
        assert result.returncode == 0, result.stderr[-2000:]
        if name == "ddp":
            assert "2 processes on cpu (batch 8 = 2 x 4)" in result.stdout
            assert result.stdout.count("epoch 2/2") == 1  # rank 0 alone reports
    ddp = load_checkpoint(runs["ddp"] / "last.pt")
    single = load_checkpoint(runs["single"] / "last.pt")
    assert not any(key.startswith("module.") for key in ddp["model"])  # the unwrapped model was saved
    assert ddp["model"].keys() == single["model"].keys()
    # Same samples in every global batch, same augmentations, BatchNorm over the whole global batch:
    # only the order of floating-point sums differs (all-reduce, per-process partial sums).
    for key, value in single["model"].items():
        torch.testing.assert_close(ddp["model"][key], value, atol=1e-5, rtol=1e-4, msg=key)
    for mine, theirs in zip(ddp["history"], single["history"]):
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-5)
        assert mine["val_loss"] == pytest.approx(theirs["val_loss"], rel=1e-4)
    assert len(ddp["processes"]) == 2 and len(single["processes"]) == 1
    assert sorted(p.name for p in runs["ddp"].iterdir()) == sorted(p.name for p in runs["single"].iterdir())
