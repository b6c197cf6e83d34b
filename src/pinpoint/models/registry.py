"""The one front door to the models: a plain dict of name -> class, and create_model()."""

from __future__ import annotations

from torch import nn

from pinpoint.models.ensemble import PinNetS2DEnsemble, PinNetS2DGatedEnsemble
from pinpoint.models.heatmap import HeatmapNet
from pinpoint.models.pinnet import PinNet, PinNetS2D, PinNetS2DGated
from pinpoint.models.regression import RegressionNet

MODELS: dict[str, type[nn.Module]] = {
    "pinnet": PinNet,
    "pinnet-s2d": PinNetS2D,
    "pinnet-s2d-gated": PinNetS2DGated,
    "pinnet-s2d-x3": PinNetS2DEnsemble,
    "pinnet-s2d-gated-x2": PinNetS2DGatedEnsemble,
    "heatmap": HeatmapNet,
    "regression": RegressionNet,
}


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a model by name; kwargs are the constructor's (they are saved in checkpoints)."""
    try:
        cls = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(sorted(MODELS))}") from None
    return cls(**kwargs)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
