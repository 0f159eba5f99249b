"""torchvision's ImageNet models, adapted to the data: below 64 px a small-image stem (ResNet: a
3×3 stride-1 first conv, no max-pool; VGG: the pools the image can afford and 1×1 pooling before
the classifier); other input channels a first conv of their own. Their pretrained weights
(`model.weights`, e.g. IMAGENET1K_V1) are torchvision's, read offline from torch's hub cache, the
file torchvision itself would download there; their preprocessing is the weights' own transforms."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import Tensor, nn

from prunebench.training import preprocess, torchfile
from prunebench.training.models.family import Pretrained, WeightsError, register


def _torchvision_models() -> Any:
    from prunebench.training._torchvision import import_torchvision

    return import_torchvision().models


@dataclass(frozen=True)
class TorchvisionWeights(Pretrained):
    """torchvision's weights of the architecture `arch`, by their enum name (`model.weights`)."""

    arch: str

    def entry(self, weights: str) -> Any:
        """torchvision's weights entry `weights` of the architecture."""
        choices = _torchvision_models().get_model_weights(self.arch)
        if weights not in choices.__members__:
            raise WeightsError(f"model.weights = {weights!r}: expected one of {', '.join(choices.__members__)}")
        return choices[weights]

    def file(self, description: dict[str, Any]) -> Path:
        """The weights' file in the hub cache; fetched only with `model.download`."""
        weights = description["weights"]
        url = self.entry(weights).url
        directory = Path(torch.hub.get_dir()) / "checkpoints"
        file = directory / Path(urlparse(url).path).name
        if not file.is_file():
            if not description.get("download"):
                raise WeightsError(
                    f"model.weights = {weights!r}: {file.name} is not in {directory}: put it there "
                    f"(from {url}), or set model.download: true on a machine with internet"
                )
            torch.hub.load_state_dict_from_url(url, model_dir=str(directory), map_location="cpu", check_hash=True)
        return file

    def state(self, description: dict[str, Any], model: nn.Module) -> dict[str, Tensor]:
        return torchfile.read(self.file(description))

    def preprocessing(self, description: dict[str, Any]) -> dict[str, Any] | None:
        if not description.get("weights"):
            return None
        expected = self.entry(description["weights"]).transforms()
        crop, resize = expected.crop_size[0], expected.resize_size[0]
        return {
            "mean": tuple(expected.mean),
            "std": tuple(expected.std),
            "crop_pct": crop / resize,
            "interpolation": expected.interpolation.value,
        }


SMALL = preprocess.SMALL  # below this input size, torchvision's ImageNet stems would shrink the image away


def _torchvision(name: str, num_classes: int) -> Any:  # its layers are replaced by attribute and index
    return getattr(_torchvision_models(), name)(num_classes=num_classes)


def _resnet(name: str, in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    model = _torchvision(name, num_classes)
    if image_size < SMALL:  # 3×3 stride-1 stem, no max-pool (as for CIFAR)
        model.conv1 = nn.Conv2d(in_channels, 64, 3, padding=1, bias=False)
        model.maxpool = nn.Identity()
    elif in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
    return model


@register("resnet18", TorchvisionWeights("resnet18"))
def resnet18(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return _resnet("resnet18", in_channels, num_classes, image_size)


@register("resnet50", TorchvisionWeights("resnet50"))
def resnet50(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return _resnet("resnet50", in_channels, num_classes, image_size)


@register("mobilenet_v3_large", TorchvisionWeights("mobilenet_v3_large"))
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


@register("vgg11", TorchvisionWeights("vgg11"))
def vgg11(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return _vgg("vgg11", in_channels, num_classes, image_size)


@register("vgg16", TorchvisionWeights("vgg16"))
def vgg16(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return _vgg("vgg16", in_channels, num_classes, image_size)
