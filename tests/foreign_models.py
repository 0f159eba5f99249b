"""Models written the way other code bases write them, for digits-sized inputs (1 × 8 × 8, 10
classes): what torch-pruning's graph gets right, and what it does not."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn(cin: int, cout: int, stride: int = 1, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout))


class Block(nn.Module):
    """A basic residual block; where the shape changes, the shortcut either subsamples and pads
    the new channels with zeros ("option A", parameter-free, as in the CIFAR ResNets of 2016) or
    is a 1×1 convolution with BatchNorm ("option B")."""

    def __init__(self, cin: int, cout: int, stride: int, shortcut: str):
        super().__init__()
        self.conv1, self.conv2 = conv_bn(cin, cout, stride), conv_bn(cout, cout)
        self.stride, self.extra, self.kind = stride, cout - cin, shortcut
        self.project = conv_bn(cin, cout, stride, 1) if shortcut == "conv" and (stride > 1 or cin != cout) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.relu(self.conv1(x)))
        if self.project is not None:
            short = self.project(x)
        elif self.stride > 1 or self.extra:
            half = self.extra // 2
            short = F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, half, self.extra - half))
        else:
            short = x
        return F.relu(out + short)


class ResNet(nn.Module):
    def __init__(self, shortcut: str = "pad"):
        super().__init__()
        self.stem = conv_bn(1, 8)
        self.layer1 = Block(8, 8, 1, shortcut)
        self.layer2 = Block(8, 16, 2, shortcut)
        self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer2(self.layer1(F.relu(self.stem(x))))
        return self.fc(self.pool(x).flatten(1))


class TwoBranches(nn.Module):
    """An Inception-style cell: a 3×3 and a 1×1 branch, concatenated."""

    def __init__(self):
        super().__init__()
        self.stem = conv_bn(1, 8)
        self.wide, self.narrow = conv_bn(8, 6), conv_bn(8, 10, kernel=1)
        self.head = conv_bn(16, 12)
        self.fc = nn.Linear(12, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(x))
        x = F.relu(torch.cat([self.wide(x), self.narrow(x)], dim=1))
        return self.fc(F.adaptive_avg_pool2d(F.relu(self.head(x)), 1).flatten(1))


class ChannelSplit(nn.Module):
    """A ShuffleNet-style split: the stem's channels in two fixed halves, one per branch."""

    def __init__(self):
        super().__init__()
        self.stem = conv_bn(1, 16)
        self.left, self.right = conv_bn(8, 8), conv_bn(8, 8)
        self.head = conv_bn(8, 12)
        self.fc = nn.Linear(12, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left, right = torch.split(F.relu(self.stem(x)), [8, 8], dim=1)
        x = F.relu(self.left(left) + self.right(right))
        return self.fc(F.adaptive_avg_pool2d(F.relu(self.head(x)), 1).flatten(1))


def pad_resnet(num_classes: int = 10) -> nn.Module:
    return ResNet("pad")


def conv_resnet(num_classes: int = 10) -> nn.Module:
    return ResNet("conv")


def two_branches(num_classes: int = 10) -> nn.Module:
    return TwoBranches()


def channel_split(num_classes: int = 10) -> nn.Module:
    return ChannelSplit()


class TinyViT(nn.Module):
    """A ViT for digits written with PyTorch's own transformer layers: 2×2 patches onto 32
    features, a class token and a position embedding as bare parameters, 2 nn.TransformerEncoderLayers
    of 4 heads (nn.MultiheadAttention inside) and an MLP of 64, a last LayerNorm."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.embed = nn.Conv2d(1, 32, 2, stride=2)
        self.cls = nn.Parameter(torch.zeros(1, 1, 32))
        self.pos = nn.Parameter(torch.randn(1, 17, 32) * 0.02)
        layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(32)
        self.head = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(x.shape[0], -1, -1), tokens], dim=1) + self.pos
        return self.head(self.norm(self.encoder(tokens))[:, 0])


def tiny_vit(num_classes: int = 10) -> nn.Module:
    torch.manual_seed(0)
    return TinyViT(num_classes)
