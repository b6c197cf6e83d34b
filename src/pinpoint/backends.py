"""What runs the network: PyTorch eager for a checkpoint, onnxruntime for an exported .onnx.

A Detector (predict.py) prepares images and decodes heatmaps the same way for both, and hands the
network's part to a backend: a callable from a prepared batch (B, 1, H, W) float32 to the raw output
tensor. The onnxruntime backend reads the inference settings that `pinpoint export` stores in the
model's metadata, so an .onnx alone is enough. onnxruntime is imported only when an ONNX model is
opened: it is an optional dependency (`pip install pinpoint[onnx]`).
"""

from __future__ import annotations

import json
import os
from typing import Protocol

import numpy as np
import torch
from torch import nn

from pinpoint.checkpoints import REQUIRED_SETTINGS, check_inference_settings
from pinpoint.errors import InputError, first_line

METADATA_KEY = "pinpoint"  # metadata_props entry holding the inference settings as JSON


class Backend(Protocol):
    """Runs the network: a prepared batch (B, 1, H, W) float32 -> its raw output as a CPU or device tensor."""

    name: str
    threads: int

    def __call__(self, batch: np.ndarray) -> torch.Tensor: ...


class TorchBackend:
    """PyTorch eager on a device (the checkpoint path)."""

    name = "torch"

    def __init__(self, model: nn.Module, device: torch.device):
        self.model = model
        self.device = device

    @property
    def threads(self) -> int:
        return torch.get_num_threads()

    @torch.no_grad()
    def __call__(self, batch: np.ndarray) -> torch.Tensor:
        return self.model(torch.from_numpy(batch).to(self.device))


class OnnxBackend:
    """The network of an exported .onnx run by onnxruntime on the CPU, behind Detector's backend interface."""

    name = "onnxruntime"

    def __init__(self, model: str | os.PathLike | bytes, threads: int | None = None, device: str = "cpu",
                 spinning: bool = False):
        import onnxruntime as ort

        label = "<bytes>" if isinstance(model, bytes) else str(model)
        if str(device).startswith("cuda"):
            raise InputError(f"{label}: --device {device}: this build runs ONNX models on the CPU only")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1  # the graph is a chain: parallelism lives inside each op
        # Idle workers busy-wait for the next op by default. On a box whose cores are shared (with our own
        # frame-reading thread, or other processes) that burns the CPU the work needs: measured here, off
        # made a 256x256 forward 1.5-2.5x faster and stopped it slowing a PyTorch model in the same process 9x.
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        if threads:
            options.intra_op_num_threads = int(threads)
        options.log_severity_level = 3  # errors only: no per-session chatter on stderr
        try:
            source = model if isinstance(model, bytes) else str(model)
            self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
            raw = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
            settings = json.loads(raw) if raw else None
        except onnx_load_errors() as exc:
            raise InputError(f"{label}: not a loadable ONNX model ({type(exc).__name__}: {first_line(exc)})") from None
        if not isinstance(settings, dict) or not set(REQUIRED_SETTINGS) <= settings.keys():
            raise InputError(f"{label}: an ONNX model without pinpoint settings; export it with `pinpoint export`")
        check_inference_settings(settings, label)
        settings.setdefault("nms_kernel", 3)
        settings.setdefault("subpixel", True)
        self.model_name = str(settings.pop("model_name", "onnx"))
        self.settings = settings
        self.input_name = self.session.get_inputs()[0].name
        # 0 means onnxruntime's own default: one thread per physical core.
        self.threads = int(threads) if threads else (os.cpu_count() or 1)

    def __call__(self, batch: np.ndarray) -> torch.Tensor:
        out = self.session.run(None, {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)})[0]
        return torch.from_numpy(out)


def onnx_load_errors() -> tuple[type[BaseException], ...]:
    """What opening a bad ONNX file can raise: onnxruntime's error types derive from Exception directly."""
    import onnxruntime as ort

    state = ort.capi.onnxruntime_pybind11_state
    return (state.Fail, state.InvalidGraph, state.InvalidProtobuf, state.NoSuchFile, state.InvalidArgument,
            state.NotImplemented, json.JSONDecodeError, OSError, RuntimeError)
