"""The seed regression model: a tiny CNN that regresses one point directly.

Two conv-BN-ReLU-maxpool stages, global max pooling, a linear layer and a sigmoid give
(x / W, y / H) of a single target. It cannot say "no target" or find a second one; it stays
as the reference for what direct coordinate regression reaches.
"""

from __future__ import annotations

import torch
from torch import nn


class RegressionNet(nn.Module):
    """Image (B, 1, H, W) -> one normalised point (B, 2) per image."""

    output = "point"
    stride = 1

    def __init__(self, channels: tuple[int, int] = (16, 32)):
        super().__init__()
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1, bias=False), nn.BatchNorm2d(c1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1, bias=False), nn.BatchNorm2d(c2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        self.head = nn.Linear(c2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.amax(self.features(x), dim=(2, 3))
        return torch.sigmoid(self.head(pooled))
