"""The seed heatmap model: a small U-shaped net whose decoder multiplies instead of adds.

Four encoder stages (full, 1/2, 1/4, 1/8 resolution). Each of the three upsampling blocks
takes the deeper map through a 3x3 conv, upsamples it bilinearly x2 and multiplies it by a
1x1 conv of the skip map, so high-level context gates low-level detail. A 1x1 head with a
sigmoid gives a heatmap at full resolution whose peaks are the targets.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(cin: int, cout: int, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class GatedUp(nn.Module):
    """conv3x3(deep) upsampled x2, times conv1x1(skip)."""

    def __init__(self, deep: int, skip: int):
        super().__init__()
        self.deep = conv_bn_relu(deep, skip, 3)
        self.skip = conv_bn_relu(skip, skip, 1)

    def forward(self, deep: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(self.deep(deep), size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return up * self.skip(skip)


class HeatmapNet(nn.Module):
    """Image (B, 1, H, W), H and W multiples of 8 -> heatmap (B, 1, H, W) in (0, 1)."""

    output = "heatmap"
    stride = 8

    def __init__(self, channels: tuple[int, int, int, int] = (8, 16, 24, 32)):
        super().__init__()
        c1, c2, c3, c4 = channels
        self.stage1 = conv_bn_relu(1, c1)
        self.stage2 = conv_bn_relu(c1, c2)
        self.stage3 = conv_bn_relu(c2, c3)
        self.stage4 = conv_bn_relu(c3, c4)
        self.up3 = GatedUp(c4, c3)
        self.up2 = GatedUp(c3, c2)
        self.up1 = GatedUp(c2, c1)
        self.head = nn.Conv2d(c1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s1 = self.stage1(x)
        s2 = self.stage2(F.max_pool2d(s1, 2))
        s3 = self.stage3(F.max_pool2d(s2, 2))
        s4 = self.stage4(F.max_pool2d(s3, 2))
        d = self.up3(s4, s3)
        d = self.up2(d, s2)
        d = self.up1(d, s1)
        return torch.sigmoid(self.head(d))
