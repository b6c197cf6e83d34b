"""PinNet and PinNetS2D: pinpoint's own heatmap models, built for 1-pixel targets on a CPU budget.

PinNetS2D ("pinnet-s2d") is PinNet run at half resolution without losing a pixel; its docstring
says why. PinNetS2DGated ("pinnet-s2d-gated", the default) adds ACM's top-down gates to its
decoder. What PinNet changes against the seed heatmap net, and why:
- a full-resolution stem and a full-resolution decoder stage, so a one-pixel target is seen
  before any downsampling and its peak is placed at full resolution;
- strided convs instead of max-pooling (pooling keeps the brightest pixel of every 2x2 block,
  which looks like a target everywhere in noisy frames);
- residual blocks, and two dilated blocks at 1/8 resolution (dilation 2 and 4) whose receptive
  field spans ~200 px of the image, enough to tell a target from a bright edge or a cloud fragment;
- an additive U-Net decoder (1x1 reduce, upsample, add the skip, 3x3 conv) that costs little at
  full resolution;
- the head's bias starts at the background rate (CenterNet), so early training is not flooded
  with false peaks under the focal loss.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ResBlock(nn.Module):
    """Two 3x3 convs with an identity shortcut."""

    def __init__(self, channels: int, dilation: int = 1):
        super().__init__()
        self.conv1 = conv_bn_relu(channels, channels, dilation=dilation)
        self.conv2 = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False),
                                   nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.conv2(self.conv1(x)))


class Up(nn.Module):
    """1x1 reduce the deep map, upsample x2, add the skip, refine with a 3x3 conv.

    With `global_attention`, the skip is first scaled, channel by channel, by 2 x a gate in (0, 1)
    read from the whole deep map (global average pool, 1x1 conv, ReLU, 1x1 conv, sigmoid): ACM's
    top-down modulation (Dai et al., WACV 2021), where what the coarse maps make of the scene
    (sky, sea, a cluttered ground) decides which fine channels speak. The last conv starts at zero,
    so the gate starts at 1 and training starts from the plain decoder.
    """

    def __init__(self, deep: int, skip: int, global_attention: bool = False):
        super().__init__()
        self.reduce = nn.Sequential(nn.Conv2d(deep, skip, 1, bias=False), nn.BatchNorm2d(skip))
        self.refine = conv_bn_relu(skip, skip)
        self.scene = None
        if global_attention:
            hidden = max(skip // 4, 4)
            self.scene = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(deep, hidden, 1), nn.ReLU(inplace=True),
                                       nn.Conv2d(hidden, skip, 1))
            nn.init.zeros_(self.scene[-1].weight)
            nn.init.zeros_(self.scene[-1].bias)

    def forward(self, deep: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        if self.scene is not None:
            skip = skip * (2 * torch.sigmoid(self.scene(deep)))
        up = F.interpolate(self.reduce(deep), size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.refine(F.relu(up + skip))


class PinNet(nn.Module):
    """Image (B, 1, H, W), H and W multiples of `stride` -> heatmap (B, 1, H, W) in (0, 1).

    `block` > 1 folds each block x block patch of pixels into channels before the stem and the
    head predicts the block's block**2 heatmap values (PinNetS2D); 1 is the full-resolution PinNet.
    `global_attention` gates each decoder skip by the deep map's global pool (Up).
    """

    output = "heatmap"
    stride = 8
    block = 1

    def __init__(self, widths: tuple[int, int, int, int] = (8, 16, 24, 32), deep_blocks: int = 2,
                 global_attention: bool = False):
        super().__init__()
        w1, w2, w3, w4 = widths
        self.stem = self.make_stem(self.block ** 2, w1)
        self.down2 = nn.Sequential(conv_bn_relu(w1, w2, stride=2), conv_bn_relu(w2, w2))
        self.down3 = nn.Sequential(conv_bn_relu(w2, w3, stride=2), ResBlock(w3))
        self.down4 = nn.Sequential(conv_bn_relu(w3, w4, stride=2),
                                   *[ResBlock(w4, dilation=2 ** (1 + i % 2)) for i in range(deep_blocks)])
        self.up3 = Up(w4, w3, global_attention)
        self.up2 = Up(w3, w2, global_attention)
        self.up1 = Up(w2, w1, global_attention)
        self.head = nn.Conv2d(w1, self.block ** 2, 1)
        nn.init.constant_(self.head.bias, -math.log((1 - 0.01) / 0.01))

    def make_stem(self, cin: int, cout: int) -> nn.Module:
        return conv_bn_relu(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s1 = self.stem(F.pixel_unshuffle(x, self.block) if self.block > 1 else x)
        s2 = self.down2(s1)
        s3 = self.down3(s2)
        s4 = self.down4(s3)
        d = self.up1(self.up2(self.up3(s4, s3), s2), s1)
        logits = self.head(d)
        return torch.sigmoid(F.pixel_shuffle(logits, self.block) if self.block > 1 else logits)


class PinNetS2D(PinNet):
    """PinNet at half resolution without losing a pixel: pixel-unshuffle in, pixel-shuffle out.

    Why: a conv layer at full resolution costs 4x the same layer at half resolution, and PinNet
    spent most of its time there, although a 1-pixel target needs only that its pixel is not
    thrown away. Space-to-depth keeps every pixel (each 2x2 block becomes 4 channels of the stem's
    input) and the head predicts the 4 heatmap values of each block, shuffled back to a full
    resolution heatmap, so peaks are still placed per pixel and refined to sub-pixel by the codec.
    Both are plain reshapes (ONNX SpaceToDepth / DepthToSpace). The saved budget buys a fourth
    scale: stages at 1/2, 1/4, 1/8 and 1/16, and dilated residual blocks (dilation 2, 4, 2, ...)
    at 1/16 whose receptive field covers the whole of a 256 px frame. Measured here at 256x256:
    0.21 GFLOPs (PinNet 0.53) and about twice PinNet's speed in onnxruntime, with equal or better
    accuracy on NUAA-SIRST (benchmarks/results/nuaa_sirst.md).
    """

    stride = 16
    block = 2

    def __init__(self, widths: tuple[int, int, int, int] = (8, 16, 32, 48), deep_blocks: int = 2,
                 global_attention: bool = False):
        super().__init__(widths, deep_blocks, global_attention)

    def make_stem(self, cin: int, cout: int) -> nn.Module:
        return nn.Sequential(conv_bn_relu(cin, cout), conv_bn_relu(cout, cout))


class PinNetS2DGated(PinNetS2D):
    """PinNetS2D whose decoder skips are gated by the deep map's global pool (Up, `global_attention`).

    Why the default: on NUAA-SIRST the gates raised AP in five seeds of five (mean 0.948 against
    0.941) for 1,000 parameters and no measurable time; with the thresholds cut on every training
    image, F1 followed (mean 0.932 against 0.926 without the gates; docs/research-log.md, -gatt).
    A name of its own, not a new default argument of PinNetS2D, so that checkpoints saved as
    "pinnet-s2d" keep loading into the network they were trained as.
    """

    def __init__(self, widths: tuple[int, int, int, int] = (8, 16, 32, 48), deep_blocks: int = 2,
                 global_attention: bool = True):
        super().__init__(widths, deep_blocks, global_attention)
