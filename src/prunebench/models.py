"""Model registry: a name in params.yaml `model.name` → a small factory function.

Every factory takes the data set's shape (`in_channels`, `num_classes`, `image_size`) plus
its own keyword knobs from the `model` section, so a model description is plain data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

MODELS: dict[str, Callable[..., nn.Module]] = {}


def register(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    MODELS[fn.__name__] = fn
    return fn


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


@register
def cnn(in_channels: int, num_classes: int, image_size: int, width: int = 32, hidden: int = 64) -> nn.Module:
    return SmallCNN(in_channels, num_classes, width, hidden)


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


@register
def resnet20(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return CifarResNet(in_channels, num_classes, blocks=3)


@register
def resnet56(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return CifarResNet(in_channels, num_classes, blocks=9)


@register
def mlp(in_channels: int, num_classes: int, image_size: int, hidden: Sequence[int] = (256, 64)) -> nn.Module:
    """Fully connected ReLU network on the flattened image (784-256-64-10 on MNIST)."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_channels * image_size * image_size
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def prunable_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Conv and Linear layers a method may prune: all of them but the output layer
    (the last one registered), which must keep one unit per class."""
    layers = {n: m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    layers.pop(output_layer_name(model))
    return layers


def output_layer_name(model: nn.Module) -> str:
    return [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))][-1]


def spec(cfg: dict, in_channels: int, num_classes: int, image_size: int) -> dict:
    """Plain-data description of a model: the params.yaml `model` section plus the data shape."""
    return {**cfg, "in_channels": in_channels, "num_classes": num_classes, "image_size": image_size}


def build(description: dict) -> nn.Module:
    knobs = {k: v for k, v in description.items() if k != "name"}
    return MODELS[description["name"]](**knobs)
