"""Model registry: a name in params.yaml `model.name` → a small factory function.

Every factory takes the data set's shape (`in_channels`, `num_classes`, `image_size`) plus
its own keyword knobs from the `model` section, so a model description is plain data.
`model.name` may also be the user's own factory, `package.module:function`, imported from the
repository root; it gets the data set's shape where its signature takes it.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from prunebench import repository
from prunebench.errors import UserError
from prunebench.params import MODEL_START

MODELS: dict[str, Callable[..., nn.Module]] = {}
Layer = nn.Conv2d | nn.Linear  # what pruning prunes
Layers = dict[str, Layer]  # by name in the model
SHAPE = ("in_channels", "num_classes", "image_size")  # what the data set fixes


class ModelError(UserError, ValueError):
    """`model.name` names no model, or its factory does not build one."""


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


@register
def vgg11_bn(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return _cifar_vgg(11, in_channels, num_classes, image_size)


@register
def vgg16_bn(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return _cifar_vgg(16, in_channels, num_classes, image_size)


@register
def vgg19_bn(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return _cifar_vgg(19, in_channels, num_classes, image_size)


SMALL = 64  # below this input size, torchvision's ImageNet stems would shrink the image away


def _torchvision(name: str, num_classes: int) -> Any:  # its layers are replaced by attribute and index
    from prunebench.training._torchvision import import_torchvision

    return getattr(import_torchvision().models, name)(num_classes=num_classes)


def _resnet(name: str, in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    model = _torchvision(name, num_classes)
    if image_size < SMALL:  # 3×3 stride-1 stem, no max-pool (as for CIFAR)
        model.conv1 = nn.Conv2d(in_channels, 64, 3, padding=1, bias=False)
        model.maxpool = nn.Identity()
    elif in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
    return model


@register
def resnet18(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return _resnet("resnet18", in_channels, num_classes, image_size)


@register
def resnet50(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return _resnet("resnet50", in_channels, num_classes, image_size)


@register
def mobilenet_v3_large(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    model = _torchvision("mobilenet_v3_large", num_classes)
    first = model.features[0][0]
    model.features[0][0] = nn.Conv2d(
        in_channels, first.out_channels, 3, stride=1 if image_size < SMALL else 2, padding=1, bias=False
    )
    return model


def _vgg(name: str, in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    model = _torchvision(name, num_classes)
    first = model.features[0]
    model.features[0] = nn.Conv2d(in_channels, first.out_channels, 3, padding=1)
    if image_size < SMALL:  # keep the pools the image can afford; pool to 1×1 before the classifier
        pools = [i for i, m in enumerate(model.features) if isinstance(m, nn.MaxPool2d)]
        for i in pools[: max(0, len(pools) - int(image_size).bit_length() + 1)]:
            model.features[i] = nn.Identity()
        model.avgpool = nn.AdaptiveAvgPool2d(1)
        model.classifier[0] = nn.Linear(512, model.classifier[0].out_features)
    return model


@register
def vgg11(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return _vgg("vgg11", in_channels, num_classes, image_size)


@register
def vgg16(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return _vgg("vgg16", in_channels, num_classes, image_size)


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


def prunable_layers(model: nn.Module) -> Layers:
    """Conv and Linear layers a method may prune: all of them but the output layer
    (the last one registered), which must keep one unit per class."""
    layers: Layers = {n: m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    layers.pop(output_layer_name(model))
    return layers


def output_units(module: nn.Module) -> int:
    """How many channels or features a layer (Conv, Linear, BatchNorm) puts out."""
    return next(getattr(module, a) for a in ("num_features", "out_channels", "out_features") if hasattr(module, a))


def output_layer_name(model: nn.Module) -> str:
    return [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))][-1]


def spec(section: dict, in_channels: int, num_classes: int, image_size: int) -> dict:
    """Plain-data description of a model: the params.yaml `model` section (as plain data) plus the data shape."""
    return {**section, "in_channels": in_channels, "num_classes": num_classes, "image_size": image_size}


def factory(name: str) -> Callable[..., nn.Module]:
    """A registry model, or the user's `package.module:function`."""
    if name in MODELS:
        return MODELS[name]
    module, _, function = name.partition(":")
    if not function:
        raise ModelError(f"model.name = {name!r}: expected one of {', '.join(MODELS)}, or package.module:function")
    try:
        with repository.on_path():
            return getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError) as error:
        raise ModelError(f"model.name = {name!r}: cannot import it from the repository root ({error})") from error


def arguments(fn: Callable[..., nn.Module], description: dict) -> dict:
    """What the factory is called with: the data set's shape where it takes it, and every other
    architecture key of the `model` section."""
    parameters = inspect.signature(fn).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    return {
        k: v
        for k, v in description.items()
        if k != "name" and k not in MODEL_START and (k not in SHAPE or takes_any or k in parameters)
    }


def build(description: dict) -> nn.Module:
    """The architecture a description names, freshly initialised."""
    fn = factory(description["name"])
    model = fn(**arguments(fn, description))
    if not isinstance(model, nn.Module):
        raise ModelError(f"model.name = {description['name']!r}: returned {type(model).__name__}, not an nn.Module")
    return model
