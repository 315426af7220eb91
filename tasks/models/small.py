"""Models shared by tasks: small networks for the embedded tasks, and wrappers (input normalisation, embedding
head) for the paper tasks."""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    """ResNet basic block (He et al. 2016): two 3x3 convolutions with BatchNorm and an identity shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x):
        out = nn.functional.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return nn.functional.relu(out + self.shortcut(x))


class SmallResNet(nn.Module):
    """A CIFAR-style ResNet scaled down for 8x8 inputs: a stem, one block per stage, global pooling.

    Inputs may be integer pixels (kept as uint8 on the device): they are converted to float and
    multiplied by `input_scale`; the stem's BatchNorm standardises what follows.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, widths: tuple[int, ...] = (16, 32), input_scale: float = 1.0):
        super().__init__()
        self.input_scale = input_scale
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU())
        blocks, channels = [], widths[0]
        for i, width in enumerate(widths):
            blocks.append(BasicBlock(channels, width, stride=1 if i == 0 else 2))
            channels = width
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x):
        x = self.blocks(self.stem(x.float() * self.input_scale))
        return self.head(x.mean(dim=(2, 3)))


class MLP(nn.Module):
    """Fully connected network with BatchNorm after each hidden layer (norm layers are where adapters attach)."""

    def __init__(self, in_features: int, hidden: tuple[int, ...], out_features: int):
        super().__init__()
        layers, width = [], in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, out_features))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class EmbeddingCNN(nn.Module):
    """Image -> embedding for metric learning: conv-BatchNorm-ReLU stages, global average pooling, a linear head.

    Each stage after the first halves the resolution (stride-2 convolution) and is followed by a
    stride-1 convolution. The output is NOT L2-normalised: the retrieval metrics and the metric-
    learning loss normalise, and leaving it to them keeps the norm available to methods that want it.

    Inputs may be uint8 pixels or floats on the 0-255 scale: the first step converts to float,
    scales by 1/255 and standardises with fixed constants (`input_mean`, `input_std`, on the 0-1
    scale), so a task can keep its images as uint8 on the device (4x less memory and transfer)
    and no statistics need to be fitted or stored with the data. The defaults are the pixel mean and
    std of the default glyphs (`metricbench.tasks.formats.glyphs.make_glyphs`).
    """

    def __init__(
        self,
        in_channels: int = 1,
        embedding_dim: int = 64,
        widths: tuple[int, ...] = (16, 32, 64),
        input_mean: float = 0.23,
        input_std: float = 0.25,
    ):
        super().__init__()
        self.input_mean, self.input_std = input_mean, input_std
        layers, channels = [], in_channels
        for i, width in enumerate(widths):
            stride = 1 if i == 0 else 2
            layers += [nn.Conv2d(channels, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
            layers += [nn.Conv2d(width, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
            channels = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, embedding_dim)

    def forward(self, x):
        x = (x.float() / 255.0 - self.input_mean) / self.input_std
        return self.head(self.features(x).mean(dim=(2, 3)))


class Normalized(nn.Module):
    """`module` applied to images normalised on the device: uint8 (or 0-255 float) pixels are scaled to
    0-1 and standardised per channel with fixed `mean` and `std`, so a task can keep and transfer its
    images as uint8. The wrapped module's keys keep their names under `net.`."""

    def __init__(self, net: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean).reshape(1, -1, 1, 1) * 255, persistent=False)
        self.register_buffer("inv_std", 1 / (torch.tensor(std).reshape(1, -1, 1, 1) * 255), persistent=False)

    def forward(self, x):
        return self.net((x.float() - self.mean) * self.inv_std)


class EmbeddingHead(nn.Module):
    """A backbone's pooled features -> a linear embedding, L2-normalised (the standard deep-metric-learning head)."""

    def __init__(self, backbone: nn.Module, features: int, embedding_dim: int):
        super().__init__()
        self.backbone = backbone
        self.embedding = nn.Linear(features, embedding_dim)

    def forward(self, x):
        return nn.functional.normalize(self.embedding(self.backbone(x)), dim=1)
