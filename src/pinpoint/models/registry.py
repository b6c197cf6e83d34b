"""The one front door to the models: a plain dict of name -> class, and create_model()."""

from __future__ import annotations

import inspect

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
    """Build a model by name; kwargs are the constructor's (they are saved in checkpoints).

    An argument the constructor does not take (one removed since a checkpoint was written, such
    as local_contrast) is a ValueError naming it, not a TypeError from deep inside.
    """
    try:
        cls = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(sorted(MODELS))}") from None
    taken = takes(cls)
    unknown = [key for key in kwargs if taken is not None and key not in taken]
    if unknown:
        shown = ", ".join(f"{key} = {kwargs[key]!r}" for key in unknown)
        raise ValueError(f"model argument {shown} is not one {name} takes in this version of pinpoint "
                         "(removed settings: docs/research-log.md)")
    return cls(**kwargs)


def takes(cls: type) -> set[str] | None:
    """The keyword arguments a model's constructor names, through the classes that pass **kwargs on
    (an ensemble's go to its member_class); None when it takes any."""
    names: set[str] = set()
    member = getattr(cls, "member_class", None)
    if member is not None:
        inner = takes(member)
        return None if inner is None else {"members"} | inner
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or klass is nn.Module:
            continue
        parameters = inspect.signature(klass.__init__).parameters
        names |= {n for n, p in parameters.items() if n != "self" and p.kind is not p.VAR_KEYWORD}
        if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            return names
    return None


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
