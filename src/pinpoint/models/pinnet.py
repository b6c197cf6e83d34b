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

    With `contrast_attention`, the upsampled deep map is first scaled, pixel by pixel, by 1 + a gate
    in (0, 1) read from the skip's local contrast: the skip minus its 5x5 mean, through a 1x1 conv
    and a sigmoid. The idea comes from ALCNet's bottom-up modulation (Dai et al., TGRS 2021):
    fine maps that see a small bright spot tell the coarse, semantic maps where to speak up.
    On NUAA-SIRST it did not raise F1 (benchmarks/README.md, -catt), so it is off.

    With `global_attention`, the skip is first scaled, channel by channel, by 2 x a gate in (0, 1)
    read from the whole deep map (global average pool, 1x1 conv, ReLU, 1x1 conv, sigmoid): ACM's
    top-down modulation (Dai et al., WACV 2021), where what the coarse maps make of the scene
    (sky, sea, a cluttered ground) decides which fine channels speak. The last conv starts at zero,
    so the gate starts at 1 and training starts from the plain decoder.
    """

    def __init__(self, deep: int, skip: int, contrast_attention: bool = False, global_attention: bool = False):
        super().__init__()
        self.reduce = nn.Sequential(nn.Conv2d(deep, skip, 1, bias=False), nn.BatchNorm2d(skip))
        self.refine = conv_bn_relu(skip, skip)
        self.gate = nn.Conv2d(skip, 1, 1) if contrast_attention else None
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
        if self.gate is not None:
            up = self.attend(up, skip)
        return self.refine(F.relu(up + skip))

    def attend(self, up: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """`up` scaled by 1 + the gate read from `skip`'s local contrast (its 5x5 mean taken over pixels inside)."""
        contrast = skip - F.avg_pool2d(skip, 5, stride=1, padding=2, count_include_pad=False)
        return up * (1 + torch.sigmoid(self.gate(contrast)))


class NestedUp(nn.Module):
    """A node of a nested (UNet++) decoder: the deep map reduced and upsampled x2, concatenated with
    every earlier map of this scale, fused by a 3x3 conv."""

    def __init__(self, deep: int, width: int, earlier: int):
        super().__init__()
        self.reduce = nn.Sequential(nn.Conv2d(deep, width, 1, bias=False), nn.BatchNorm2d(width))
        self.fuse = conv_bn_relu(width * (earlier + 1), width)

    def forward(self, deep: torch.Tensor, earlier: list[torch.Tensor]) -> torch.Tensor:
        up = F.interpolate(self.reduce(deep), size=earlier[0].shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse(torch.cat([*earlier, F.relu(up)], dim=1))


class NestedDecoder(nn.Module):
    """UNet++'s dense nested skips over PinNet's four stages: node (i, j) of scale i fuses every
    earlier node of its scale with node (i + 1, j - 1) upsampled, and the finest last node is the output.

    Why it was tried: DNANet (Li et al., TIP 2023) credits repeated fusion between scales with keeping
    small targets alive in the deep layers. On NUAA-SIRST it did not raise F1, at twice the FLOPs
    (benchmarks/README.md, -nest), so it is off.
    """

    def __init__(self, widths: tuple[int, ...]):
        super().__init__()
        levels = len(widths)
        self.nodes = nn.ModuleDict({f"{i}_{j}": NestedUp(widths[i + 1], widths[i], j)
                                    for j in range(1, levels) for i in range(levels - j)})

    def forward(self, stages: list[torch.Tensor]) -> torch.Tensor:
        grid = [[stage] for stage in stages]  # grid[i][j]: node (i, j); column 0 is the encoder
        for j in range(1, len(stages)):
            for i in range(len(stages) - j):
                grid[i].append(self.nodes[f"{i}_{j}"](grid[i + 1][j - 1], grid[i]))
        return grid[0][-1]


LOCAL_CONTRAST_FLOOR = 0.05  # in the input's (globally standardised) units: flat sky is not blown up into noise


def local_contrast(x: torch.Tensor, window: int) -> torch.Tensor:
    """Each pixel's difference from the mean of the `window` x `window` box around it, divided by that
    box's standard deviation (floored at LOCAL_CONTRAST_FLOOR).

    Why: a whole-image standardisation leaves a faint target on smooth sky at a fraction of the
    contrast of clutter in a busy image; measured against its own surroundings it stands out as
    much as a bright one. Separable box means (exact at the borders: only pixels inside count).
    On NUAA-SIRST it raised AP but not F1, at half the speed (benchmarks/README.md, -lc17), so it is off by default.
    """
    def box(t: torch.Tensor) -> torch.Tensor:
        t = F.avg_pool2d(t, (1, window), stride=1, padding=(0, window // 2), count_include_pad=False)
        return F.avg_pool2d(t, (window, 1), stride=1, padding=(window // 2, 0), count_include_pad=False)

    mean = box(x)
    variance = (box(x * x) - mean * mean).clamp(min=0)
    return (x - mean) / torch.sqrt(variance + LOCAL_CONTRAST_FLOOR ** 2)


class PinNet(nn.Module):
    """Image (B, 1, H, W), H and W multiples of `stride` -> heatmap (B, 1, H, W) in (0, 1).

    `block` > 1 folds each block x block patch of pixels into channels before the stem and the
    head predicts the block's block**2 heatmap values (PinNetS2D); 1 is the full-resolution PinNet.
    `local_contrast` > 0 (an odd window side) gives the stem the image's local contrast
    (`local_contrast()`) as a second channel beside the image itself. `nested` replaces the
    U-Net decoder by UNet++'s dense nested skips (NestedDecoder); `contrast_attention` gates each
    decoder stage by the local contrast of its skip, `global_attention` each skip by the deep map's
    global pool (Up).
    """

    output = "heatmap"
    stride = 8
    block = 1

    def __init__(self, widths: tuple[int, int, int, int] = (8, 16, 24, 32), deep_blocks: int = 2,
                 local_contrast: int = 0, nested: bool = False, contrast_attention: bool = False,
                 global_attention: bool = False):
        super().__init__()
        if local_contrast < 0 or (local_contrast and local_contrast % 2 == 0):
            raise ValueError(f"local_contrast={local_contrast}: the window side must be odd, or 0 (off)")
        if nested and (contrast_attention or global_attention):
            raise ValueError("nested and an attention gate: the gates live in the U-Net decoder; choose one decoder")
        self.local_contrast = local_contrast
        self.nested = nested
        w1, w2, w3, w4 = widths
        self.stem = self.make_stem(self.block ** 2 * (2 if local_contrast else 1), w1)
        self.down2 = nn.Sequential(conv_bn_relu(w1, w2, stride=2), conv_bn_relu(w2, w2))
        self.down3 = nn.Sequential(conv_bn_relu(w2, w3, stride=2), ResBlock(w3))
        self.down4 = nn.Sequential(conv_bn_relu(w3, w4, stride=2),
                                   *[ResBlock(w4, dilation=2 ** (1 + i % 2)) for i in range(deep_blocks)])
        if nested:
            self.decoder = NestedDecoder(widths)
        else:
            self.up3 = Up(w4, w3, contrast_attention, global_attention)
            self.up2 = Up(w3, w2, contrast_attention, global_attention)
            self.up1 = Up(w2, w1, contrast_attention, global_attention)
        self.head = nn.Conv2d(w1, self.block ** 2, 1)
        nn.init.constant_(self.head.bias, -math.log((1 - 0.01) / 0.01))

    def make_stem(self, cin: int, cout: int) -> nn.Module:
        return conv_bn_relu(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.local_contrast:
            x = torch.cat([x, local_contrast(x, self.local_contrast)], dim=1)
        s1 = self.stem(F.pixel_unshuffle(x, self.block) if self.block > 1 else x)
        s2 = self.down2(s1)
        s3 = self.down3(s2)
        s4 = self.down4(s3)
        if self.nested:
            d = self.decoder([s1, s2, s3, s4])
        else:
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
                 local_contrast: int = 0, nested: bool = False, contrast_attention: bool = False,
                 global_attention: bool = False):
        super().__init__(widths, deep_blocks, local_contrast, nested, contrast_attention, global_attention)

    def make_stem(self, cin: int, cout: int) -> nn.Module:
        return nn.Sequential(conv_bn_relu(cin, cout), conv_bn_relu(cout, cout))


class PinNetS2DGated(PinNetS2D):
    """PinNetS2D whose decoder skips are gated by the deep map's global pool (Up, `global_attention`).

    Why the default: on NUAA-SIRST the gates raised AP in five seeds of five (mean 0.948 against
    0.941) for 1,000 parameters and no measurable time; with the thresholds cut on every training
    image, F1 followed (mean 0.932 against 0.926 without the gates; benchmarks/README.md, -gatt).
    A name of its own, not a new default argument of PinNetS2D, so that checkpoints saved as
    "pinnet-s2d" keep loading into the network they were trained as.
    """

    def __init__(self, widths: tuple[int, int, int, int] = (8, 16, 32, 48), deep_blocks: int = 2,
                 local_contrast: int = 0, nested: bool = False, contrast_attention: bool = False,
                 global_attention: bool = True):
        super().__init__(widths, deep_blocks, local_contrast, nested, contrast_attention, global_attention)
