"""The default model: a small CNN with BatchNorm, a residual block and a hidden fully connected
layer, so that every pruning family (weights, kernels, channels, BN scales, neurons) has a target."""

from __future__ import annotations

from torch import nn

from prunebench.training.models.family import register


def conv_bn(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class ResidualBlock(nn.Module):
    """Two 3×3 conv-BN layers with an identity shortcut (the coupling torch-pruning must respect)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + x)


class SmallCNN(nn.Module):
    """The default model: conv-BN stem, a residual block, a strided conv, and a hidden FC layer,
    so that every pruning family (weights, kernels, channels, BN scales, neurons) has a target."""

    def __init__(self, in_channels: int, num_classes: int, width: int, hidden: int):
        super().__init__()
        self.stem = conv_bn(in_channels, width)
        self.block = ResidualBlock(width)
        self.down = conv_bn(width, 2 * width, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, hidden)
        self.relu = nn.ReLU(inplace=True)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x):
        x = self.pool(self.down(self.block(self.stem(x)))).flatten(1)
        return self.head(self.relu(self.fc(x)))


@register("cnn")
def cnn(in_channels: int, num_classes: int, image_size: int, width: int = 32, hidden: int = 64) -> nn.Module:
    return SmallCNN(in_channels, num_classes, width, hidden)
