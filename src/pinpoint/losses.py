"""Training losses. A heatmap of a tiny target is >99.9% background, which is why the
weighted and focal variants exist beside the seed's plain MSE."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def heatmap_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """Loss between predicted and target heatmaps, both (B, 1, H, W) in [0, 1].

    mse:           the seed's plain mean squared error.
    weighted-mse:  squared error weighted by 1 + 100 * target, so the few pixels near targets
                   count about as much in total as the vast background.
    focal:         CenterNet's penalty-reduced focal loss (Law & Deng 2018, alpha 2, beta 4),
                   normalised by the number of targets.
    """
    if kind == "mse":
        return torch.mean((pred - target) ** 2)
    if kind == "weighted-mse":
        return torch.mean((1 + 100 * target) * (pred - target) ** 2)
    if kind == "focal":
        pred = pred.clamp(1e-4, 1 - 1e-4)
        # the pixel nearest each fractional centre is the local maximum of the target
        centre = (target == F.max_pool2d(target, 3, stride=1, padding=1)) & (target > 0.3)
        positive = -((1 - pred) ** 2) * torch.log(pred) * centre
        negative = -((1 - target) ** 4) * (pred**2) * torch.log(1 - pred) * ~centre
        return (positive.sum() + negative.sum()) / centre.sum().clamp(min=1)
    raise ValueError(f"unknown heatmap loss {kind!r}; choose mse, weighted-mse or focal")


def point_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """MSE between normalised points (B, 2), images without a target (weight 0) left out."""
    per_image = ((pred - target) ** 2).mean(dim=1) * weight
    return per_image.sum() / weight.sum().clamp(min=1)
