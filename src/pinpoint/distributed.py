"""Several processes, one training: the few torch.distributed calls pinpoint needs, in one place.

torchrun starts one process per device and tells each one, through environment variables,
who it is (RANK, LOCAL_RANK, WORLD_SIZE) and where to meet the others (MASTER_ADDR, MASTER_PORT).
Outside torchrun every helper here gives the single-process answer, so the training loop calls
them unconditionally instead of branching on "am I distributed?" at every step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from pinpoint.errors import InputError
from pinpoint.predict import resolve_device

# Rank 0 validates and writes pictures while the others wait at a barrier; a long validation
# must not trip the collective timeout (NCCL's default is 10 minutes).
WAIT_LIMIT = timedelta(hours=2)


@dataclass(frozen=True)
class Cluster:
    """Where this process stands: its rank among `world_size` processes and the device it drives."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device
    owns_group: bool = False  # True when start() created the process group (so stop() ends it)

    @property
    def is_main(self) -> bool:
        """Rank 0 alone validates and writes checkpoints, logs and pictures."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    """True in a process that torchrun started alongside others (WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def choose_device(name: str, local_rank: int | None = None) -> torch.device:
    """The device for `--device NAME`: auto | cpu | cuda | cuda:i.

    Under torchrun (`local_rank` given) a CUDA device means cuda:LOCAL_RANK, one GPU per process;
    naming one index there would put every process on the same GPU, so it is refused.
    """
    device = resolve_device(name)
    if device.type != "cuda":
        return device
    count = torch.cuda.device_count()
    if local_rank is None:
        if device.index is not None and device.index >= count:
            raise InputError(f"--device {name}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
        return device
    if device.index is not None:
        raise InputError(f"--device {name}: under torchrun each process uses cuda:LOCAL_RANK; pass --device cuda "
                         "(and CUDA_VISIBLE_DEVICES to choose the GPUs)")
    if local_rank >= count:
        raise InputError(f"--device {name}: process {local_rank} on this node but only {count} CUDA device(s); "
                         "lower --nproc-per-node")
    return torch.device("cuda", local_rank)


def start(device_name: str = "auto") -> Cluster:
    """Join the process group torchrun set up (gloo on CPU, nccl on CUDA); a lone process just picks its device."""
    if not launched_by_torchrun():
        return Cluster(rank=0, local_rank=0, world_size=1, device=choose_device(device_name))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = choose_device(device_name, local_rank)
    owns_group = not dist.is_initialized()
    if owns_group:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=WAIT_LIMIT)
    return Cluster(rank=dist.get_rank(), local_rank=local_rank, world_size=dist.get_world_size(),
                   device=device, owns_group=owns_group)


def stop(cluster: Cluster) -> None:
    if cluster.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait until every process reaches this point (no-op in a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def mean_over_processes(value: float, device: torch.device) -> float:
    """The mean of one number across processes: each rank's training loss -> the run's."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return float(tensor.item()) / dist.get_world_size()


def world_size() -> int:
    """How many processes train together (1 outside torchrun)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def sum_over_processes(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of a (detached) tensor across processes: each rank's loss normaliser -> the global batch's."""
    if not (dist.is_available() and dist.is_initialized()):
        return tensor
    tensor = tensor.detach().clone()
    dist.all_reduce(tensor)
    return tensor


def gather_objects(value: Any) -> list[Any]:
    """Every process's `value`, in rank order (a one-item list in a single process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [value]
    values: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


def wrap(model: nn.Module, cluster: Cluster) -> nn.Module:
    """DistributedDataParallel with batch statistics synchronised across processes; `model` itself alone.

    Synchronised BatchNorm normalises by the statistics of the whole global batch, which is what
    a single process with the same --batch computes, so N processes train the same network as one.
    """
    if not cluster.distributed:
        return model
    if cluster.device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return nn.parallel.DistributedDataParallel(model, device_ids=[cluster.device.index])
    return nn.parallel.DistributedDataParallel(convert_to_cpu_sync_batchnorm(model))


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside DistributedDataParallel: its state_dict has no 'module.' prefix."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


class _SumOverProcesses(torch.autograd.Function):
    """all_reduce(SUM) that autograd can go through: the gradient of a sum over processes is the
    sum of every process's gradient."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.clone()
        dist.all_reduce(tensor)
        return tensor

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class CpuSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the global batch for CPU processes (torch's SyncBatchNorm supports GPUs only).

    Two passes, each summed over processes: the mean, then the mean squared deviation, as a
    single process computes them on the whole batch. Same parameters and buffers as BatchNorm,
    so checkpoints load into the plain model.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, x.shape[1]] + [1] * (x.dim() - 2)
        count = _SumOverProcesses.apply(torch.tensor(float(x.numel() // x.shape[1]), dtype=x.dtype))
        mean = _SumOverProcesses.apply(x.sum(dims)) / count
        centred = x - mean.view(shape)
        var = _SumOverProcesses.apply((centred * centred).sum(dims)) / count
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean, momentum)
                self.running_var.lerp_(var * count / (count - 1).clamp(min=1), momentum)  # unbiased, as BatchNorm
        y = centred * torch.rsqrt(var.view(shape) + self.eps)
        return y * self.weight.view(shape) + self.bias.view(shape) if self.affine else y


def convert_to_cpu_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm layer in `module` by a CpuSyncBatchNorm holding the same tensors."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, CpuSyncBatchNorm):
        synced = CpuSyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
        # the very same tensors, not copies: an optimizer built before wrapping still updates them
        if module.affine:
            synced.weight, synced.bias = module.weight, module.bias
        if module.track_running_stats:
            synced.running_mean, synced.running_var = module.running_mean, module.running_var
            synced.num_batches_tracked = module.num_batches_tracked
        synced.train(module.training)
        return synced
    for name, child in module.named_children():
        module.add_module(name, convert_to_cpu_sync_batchnorm(child))
    return module
