"""Checkpoints on disk: written atomically, read without running any code from the file.

A checkpoint is a plain dict (weights, model name and arguments, inference settings, training
config, and in last.pt what resuming needs). PyTorch's default pickle loader would run whatever
a .pt file asks it to, so a checkpoint from a colleague or a forum would be a program. Here every
load is `torch.load(weights_only=True)`: tensors, numbers, strings, lists and dicts only, plus
the numpy names a numpy random-generator state is pickled with (last.pt keeps each
process's generator states for an exact resume). A file asking for anything else is refused
before any of it runs.

What comes out is checked as well (check_checkpoint, check_inference_settings): a missing key,
a model this version does not know or a NaN threshold is one line naming the file, at load
time, instead of a traceback or an empty result later.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pinpoint.config import COUNT, PRETRAINED, RULES, SCORE
from pinpoint.errors import InputError, first_line
from pinpoint.files import atomic_path, check_regular_file

try:  # numpy >= 2 keeps it in numpy._core; checkpoints written under numpy 1 name numpy.core
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1
    from numpy.core.multiarray import _reconstruct

# What numpy's RNG state (a uint32 array in a tuple) pickles as, under both numpy names: it builds
# an array of plain numbers and nothing else (an object array would need its objects' own globals).
NUMPY_STATE_GLOBALS = [
    (_reconstruct, "numpy._core.multiarray._reconstruct"),
    (_reconstruct, "numpy.core.multiarray._reconstruct"),
    np.ndarray,
    np.dtype,
    type(np.dtype(np.uint32)),  # numpy.dtypes.UInt32DType: the state's array type
]
# The model shipped inside the package (docs/model-card.md), named config.PRETRAINED wherever a
# checkpoint is asked for: detect, eval and annotate use it when no --weights is given.
PRETRAINED_PATH = Path(__file__).parent / "weights" / "pretrained.pt"
# the same network exported (pinpoint export): what detect, track and eval run on the CPU when
# onnxruntime is installed, about twice as fast as PyTorch eager there (docs/deployment.md)
PRETRAINED_ONNX = PRETRAINED_PATH.with_suffix(".onnx")

OUTPUTS = ("heatmap", "point")
REQUIRED_SETTINGS = ("output", "stride", "img_size", "threshold", "top_k")


def weights_path(weights: str | os.PathLike | None) -> Path:
    """The file a --weights value names: the shipped model for None, "" or "pretrained" (a file of
    that name is reached as ./pretrained), any other value as the path it is."""
    if weights is None or str(weights) in ("", PRETRAINED):
        if not PRETRAINED_PATH.is_file():
            raise InputError(f"{PRETRAINED_PATH}: the pretrained model is missing from this installation; "
                             f"reinstall pinpoint or give --weights CHECKPOINT")
        return PRETRAINED_PATH
    return Path(weights)


def save_checkpoint(ckpt: dict[str, Any], path: str | os.PathLike) -> None:
    """Written to a temporary file, fsynced and renamed: a crash leaves the previous checkpoint whole."""
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The dict in a .pt file, loaded without running code from it, and checked (check_checkpoint).
    Every failure is an InputError naming the file."""
    path = Path(path)
    check_regular_file(path, "checkpoint")
    try:
        with torch.serialization.safe_globals(NUMPY_STATE_GLOBALS):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        refused = re.search(r"GLOBAL ([\w.]+)|but got <class '([\w.]+)'>", str(exc))
        if refused:
            raise InputError(f"{path}: refused: loading it would call Python code ({refused[1] or refused[2]}); a pinpoint "
                             "checkpoint holds only weights and settings, so this file was not loaded") from None
        raise InputError(f"{path}: cannot read checkpoint (damaged, or not a PyTorch checkpoint)") from None
    except Exception as exc:  # torch.load raises many kinds on a damaged or foreign file
        raise InputError(f"{path}: cannot read checkpoint (damaged, or not a PyTorch checkpoint: "
                         f"{type(exc).__name__}: {first_line(exc)})") from None
    check_checkpoint(ckpt, path)
    return ckpt


def check_checkpoint(ckpt: object, path: str | os.PathLike) -> None:
    """Refuse a loaded object that is not a pinpoint checkpoint this version can run."""
    from pinpoint.models.registry import MODELS

    if not isinstance(ckpt, dict):
        raise InputError(f"{path}: not a pinpoint checkpoint (it holds a {type(ckpt).__name__}, not a dict)")
    missing = [key for key in ("model", "model_name", "model_args", "inference") if key not in ckpt]
    if missing:
        raise InputError(f"{path}: not a pinpoint checkpoint (no {', '.join(missing)})")
    name = ckpt["model_name"]
    if not isinstance(name, str) or name not in MODELS:
        raise InputError(f"{path}: model {name!r} is not one this version of pinpoint knows ({', '.join(sorted(MODELS))})")
    if not isinstance(ckpt["model_args"], dict) or not isinstance(ckpt["model"], dict):
        raise InputError(f"{path}: not a pinpoint checkpoint (model_args and model must be dicts)")
    check_inference_settings(ckpt["inference"], path)


def check_inference_settings(settings: object, source: str | os.PathLike) -> None:
    """Refuse decoding settings that would fail later or silently give no points (a NaN threshold)."""
    if not isinstance(settings, dict):
        raise InputError(f"{source}: inference settings must be a dict")
    missing = [key for key in REQUIRED_SETTINGS if key not in settings]
    if missing:
        raise InputError(f"{source}: inference settings lack {', '.join(missing)}")
    if settings["output"] not in OUTPUTS:
        raise InputError(f"{source}: inference setting output = {settings['output']!r}; expected heatmap or point")
    limits = {"threshold": SCORE, "tta_threshold": SCORE, "stride": COUNT, "img_size": RULES["img_size"],
              "top_k": COUNT, "nms_kernel": RULES["nms_kernel"]}
    for key, rule in limits.items():
        why = rule.reason(settings[key]) if key in settings else None
        if why:
            raise InputError(f"{source}: inference setting {key} = {settings[key]!r}: {why}")
