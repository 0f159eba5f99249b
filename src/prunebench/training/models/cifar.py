"""CIFAR-style networks: the ResNets of He et al. (2016) and VGG with batch norm."""

from __future__ import annotations

from typing import Any

from torch import nn

from prunebench.training.models.cnn import conv_bn
from prunebench.training.models.family import register


class CifarBlock(nn.Module):
    """ResNet basic block; a 1×1 conv + BN shortcut where the shape changes (option B)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class CifarResNet(nn.Module):
    """The CIFAR ResNets of He et al. (2016): 3 stages of n blocks, 16/32/64 channels."""

    def __init__(self, in_channels: int, num_classes: int, blocks: int):
        super().__init__()
        self.stem = conv_bn(in_channels, 16)
        layers, c_in = [], 16
        for c_out, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(blocks):
                layers.append(CifarBlock(c_in, c_out, stride if i == 0 else 1))
                c_in = c_out
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.layers(self.stem(x))).flatten(1))


@register("resnet20")
def resnet20(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return CifarResNet(in_channels, num_classes, blocks=3)


@register("resnet56")
def resnet56(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return CifarResNet(in_channels, num_classes, blocks=9)


VGG_LAYERS: dict[int, list[Any]] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def _cifar_vgg(depth: int, in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    """CIFAR-style VGG with batch norm: 3×3 conv-BN-ReLU stacks, a hidden FC layer; a max-pool
    is skipped once the feature map is 1×1, so small inputs work too."""
    layers: list[nn.Module] = []
    c_in, size = in_channels, image_size
    for item in VGG_LAYERS[depth]:
        if item == "M":
            if size >= 2:
                layers.append(nn.MaxPool2d(2))
                size //= 2
        else:
            layers += list(conv_bn(c_in, item))
            c_in = item
    return nn.Sequential(
        nn.Sequential(*layers),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(512, 512),
        nn.ReLU(inplace=True),
        nn.Linear(512, num_classes),
    )


@register("vgg11_bn")
def vgg11_bn(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return _cifar_vgg(11, in_channels, num_classes, image_size)


@register("vgg16_bn")
def vgg16_bn(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return _cifar_vgg(16, in_channels, num_classes, image_size)


@register("vgg19_bn")
def vgg19_bn(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return _cifar_vgg(19, in_channels, num_classes, image_size)
