"""Training losses. A heatmap of a tiny target is >99.9% background, which is why the focal loss
is the default beside the seed's plain MSE."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def heatmap_loss_terms(pred: torch.Tensor, target: torch.Tensor, kind: str = "mse",
                       weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of the loss terms, what to divide it by) between heatmaps (B, 1, H, W) in [0, 1].

    Kept apart so that several processes can divide by the normaliser of the whole global batch.
    mse:    the seed's plain mean squared error (normaliser: the pixel count, of weighted pixels).
    focal:  CenterNet's penalty-reduced focal loss (Law & Deng 2018, alpha 2, beta 4),
            normalised by the number of targets.
    `weight` (B, 1, H, W) scales each pixel's term: 0 leaves an ignored region out of the loss.
    """
    if kind == "mse":
        if weight is None:
            return ((pred - target) ** 2).sum(), torch.tensor(float(pred.numel()), device=pred.device)
        return (((pred - target) ** 2) * weight).sum(), weight.expand_as(pred).sum()  # several members: each pixel per member
    if kind == "focal":
        pred = pred.clamp(1e-4, 1 - 1e-4)
        # the pixel nearest each fractional centre is the local maximum of the target
        centre = (target == F.max_pool2d(target, 3, stride=1, padding=1)) & (target > 0.3)
        positive = -((1 - pred) ** 2) * torch.log(pred) * centre
        negative = -((1 - target) ** 4) * (pred**2) * torch.log(1 - pred) * ~centre
        terms = positive + negative if weight is None else (positive + negative) * weight
        return terms.sum(), (centre if weight is None else centre * weight).sum().float()
    raise ValueError(f"unknown heatmap loss {kind!r}; choose mse or focal")


def heatmap_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "mse", weight: torch.Tensor | None = None) -> torch.Tensor:
    """The heatmap loss of one batch (see heatmap_loss_terms)."""
    total, normaliser = heatmap_loss_terms(pred, target, kind, weight)
    return total / normaliser.clamp(min=1)


def point_loss_terms(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of per-image MSE, number of images with a target) between normalised points (B, 2)."""
    return (((pred - target) ** 2).mean(dim=1) * weight).sum(), weight.sum()


def point_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """MSE between normalised points (B, 2), images without a target (weight 0) left out."""
    total, count = point_loss_terms(pred, target, weight)
    return total / count.clamp(min=1)
