"""The paper's image models: ResNet-32 for CIFAR-10, and NASNet-A Mobile and Large for ImageNet.

- `CifarResNet(depth)` / `resnet32_cifar()`: He et al. (2016), section 4.2. A 3x3 convolution with 16
  channels, then 3 stages of n = (depth - 2) / 6 basic blocks with 16, 32 and 64 channels (the first
  block of stages 2 and 3 halves the resolution), global average pooling and a linear layer. The
  shortcuts are the paper's option A for CIFAR: identity, or subsampling by 2 with the new channels
  zero-padded, so they have no parameters. ResNet-32 (n = 5) has 464,154 parameters (the paper's
  "0.46M"). Convolutions are Kaiming-normal initialised. The model takes uint8 (or 0-255 float) images
  and normalises them with the CIFAR-10 channel statistics on the device, so the task keeps its
  tensors uint8.
- `nasnet_a_mobile()`: NASNet-A Mobile (Zoph et al. 2018, "4 @ 1056", 224 px), assembled from timm's
  NASNet cells (`timm.models.nasnet`). The wiring is that of timm's NASNet-A Large with 32 stem filters,
  44 filters per cell (1056 / 24) and 4 cells per stage instead of 6 (a first cell and 3 normal
  cells, then a reduction cell; three times). It has 5,289,978 parameters; with BatchNorm's running
  statistics, 5,326,716, which is the 5.3M published (Keras's NASNetMobile reports the same pair). It
  takes inputs already normalised (mean = std = 0.5, as the published weights expect).
- `nasnet_a_large()`: timm's `nasnetalarge` (6 @ 4032, 331 px, 88.75M parameters), randomly initialised.

Nothing here downloads weights: starting weights come from the task's `weights` option (`tasks.data.weights`).
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


class _CifarBlock(nn.Module):
    """A basic block with the option-A shortcut: identity, or stride-2 subsampling with zero-padded channels."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.stride = stride
        self.extra_channels = out_channels - in_channels

    def shortcut(self, x):
        if self.stride == 1 and self.extra_channels == 0:
            return x
        x = x[:, :, :: self.stride, :: self.stride]
        half = self.extra_channels // 2
        return nn.functional.pad(x, (0, 0, 0, 0, half, self.extra_channels - half))

    def forward(self, x):
        out = nn.functional.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return nn.functional.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """He et al.'s CIFAR ResNet of depth 6n + 2 (32: ResNet-32) on uint8 or 0-255 images."""

    def __init__(self, depth: int = 32, num_classes: int = 10, widths: tuple[int, int, int] = (16, 32, 64)):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"a CIFAR ResNet has depth 6n+2 (8, 14, 20, 32, 44, 56, 110, ...), got {depth}")
        blocks_per_stage = (depth - 2) // 6
        self.register_buffer("mean", torch.tensor(CIFAR10_MEAN).reshape(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("inv_std", 1 / (torch.tensor(CIFAR10_STD).reshape(1, 3, 1, 1) * 255), persistent=False)
        self.conv = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(widths[0])
        stages, channels = [], widths[0]
        for stage, width in enumerate(widths):
            for block in range(blocks_per_stage):
                stages.append(_CifarBlock(channels, width, 2 if stage > 0 and block == 0 else 1))
                channels = width
        self.blocks = nn.Sequential(*stages)
        self.head = nn.Linear(channels, num_classes)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight)

    def forward(self, x):
        x = (x.float() - self.mean) * self.inv_std
        x = nn.functional.relu(self.bn(self.conv(x)))
        return self.head(self.blocks(x).mean(dim=(2, 3)))


def resnet32_cifar(num_classes: int = 10) -> CifarResNet:
    return CifarResNet(32, num_classes)


class NASNetAMobile(nn.Module):
    """NASNet-A Mobile (4 @ 1056) from timm's NASNet cells; `forward_features` ends with the final ReLU."""

    def __init__(self, num_classes: int = 1000, stem_size: int = 32, num_features: int = 1056, drop_rate: float = 0.5):
        super().__init__()
        from timm.layers import ConvNormAct
        from timm.models.nasnet import CellStem0, CellStem1, FirstCell, NormalCell, ReductionCell0, ReductionCell1

        c = num_features // 24  # filters per cell: a normal cell outputs 6c, a reduction cell 4c of the next stage
        cell = partial(dict, pad_type="same")  # TF "same" padding, as the published (TF-trained) weights
        self.conv0 = ConvNormAct(
            3,
            stem_size,
            kernel_size=3,
            padding=0,
            stride=2,
            norm_layer=partial(nn.BatchNorm2d, eps=0.001, momentum=0.1),
            apply_act=False,
        )
        self.cell_stem_0 = CellStem0(stem_size, num_channels=c // 4, pad_type="same")  # outputs c channels
        self.cell_stem_1 = CellStem1(stem_size, num_channels=c // 2, pad_type="same")  # outputs 2c
        stages = []
        # (channels of the stage's cells, of the previous output, of the one before) at the start of each stage
        for stage, (width, previous, before) in enumerate(((c, 2 * c, c), (2 * c, 8 * c, 6 * c), (4 * c, 16 * c, 12 * c))):
            cells = []
            if stage == 1:
                cells.append(
                    ReductionCell0(**cell(in_chs_left=6 * c, out_chs_left=2 * c, in_chs_right=6 * c, out_chs_right=2 * c))
                )
            elif stage == 2:
                cells.append(
                    ReductionCell1(**cell(in_chs_left=12 * c, out_chs_left=4 * c, in_chs_right=12 * c, out_chs_right=4 * c))
                )
            cells.append(
                FirstCell(**cell(in_chs_left=before, out_chs_left=width // 2, in_chs_right=previous, out_chs_right=width))
            )
            for i in range(3):
                left = previous if i == 0 else 6 * width
                cells.append(
                    NormalCell(**cell(in_chs_left=left, out_chs_left=width, in_chs_right=6 * width, out_chs_right=width))
                )
            stages.append(nn.ModuleList(cells))
        self.stages = nn.ModuleList(stages)
        self._reductions = (ReductionCell0, ReductionCell1)
        self.act = nn.ReLU()
        self.dropout = nn.Dropout(drop_rate)
        self.last_linear = nn.Linear(num_features, num_classes)

    def forward_features(self, x):
        conv0 = self.conv0(x)
        stem_0 = self.cell_stem_0(conv0)
        # each cell takes the previous output (x) and the one before (x_prev); a reduction cell keeps the
        # output before it as the next first cell's x_prev, as in timm's NASNet-A Large
        x, x_prev = self.cell_stem_1(conv0, stem_0), stem_0
        for cells in self.stages:
            for module in cells:
                if isinstance(module, self._reductions):
                    x = module(x, x_prev)  # x_prev stays: the first cell after a reduction reads it
                else:
                    x, x_prev = module(x, x_prev), x
        return self.act(x)

    def forward(self, x):
        return self.last_linear(self.dropout(self.forward_features(x).mean(dim=(2, 3))))


def nasnet_a_mobile(num_classes: int = 1000) -> NASNetAMobile:
    return NASNetAMobile(num_classes)


def nasnet_a_large(num_classes: int = 1000) -> nn.Module:
    import timm

    return timm.create_model("nasnetalarge", pretrained=False, num_classes=num_classes)
