"""How stored images become a model's input: the normalisation, the evaluation resize and crop,
and the training augmentation, chosen to fit the weights.

A pretrained model expects what it was trained with. The data set gives the defaults (its own
mean and std; CIFAR's pad-4 crop and flip; ImageNet's 0.875 centre crop and random resized crop),
`model.weights` gives what those weights expect (torchvision's transforms, timm's pretrained
configuration), and `data.crop_pct`, `data.mean`, `data.std`, `data.interpolation` and
`data.augment` say otherwise where the user knows better. `crop_pct` follows timm: the evaluation
resizes the shorter side to floor(image_size / crop_pct) and takes the centre crop; 1.0 with
images of the right size leaves them exactly as they are.

In-memory images are resized once for evaluation (`fit`) and augmented batch by batch on the
device (`crop_flip`, `resized_crop_flip`); files read by a DataLoader get the same steps as
torchvision transforms (`transforms`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prunebench.params import fail

SMALL = 64  # below this size images are small: CIFAR's augmentation, and models' small-image stems

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from prunebench.params import Data

PAD = 4  # pixels of zero padding before the random crop (torchvision's RandomCrop(padding=4) on CIFAR)
SCALE = (0.08, 1.0)  # RandomResizedCrop's defaults: the crop's share of the area,
RATIO = (3 / 4, 4 / 3)  # and its aspect ratio


@dataclass(frozen=True)
class Preprocess:
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_pct: float = 1.0
    augment: str = "none"  # of the training images: one of params.AUGMENTS
    interpolation: str = "bilinear"  # of every resize: one of params.INTERPOLATIONS

    def settle(self, cfg: Data, weights: dict[str, Any] | None, channels: int) -> Preprocess:
        """The data set's defaults (self), then the weights' own (mean, std, crop_pct,
        interpolation), then what params.yaml sets."""
        fitting: dict[str, Any] = {  # RGB weights on grey images (their stem adapted): the data set's own statistics
            key: tuple(value) if isinstance(value, list) else value
            for key, value in (weights or {}).items()
            if key in ("crop_pct", "interpolation") or len(value) == channels
        }
        chosen: Preprocess = dataclasses.replace(self, **fitting)
        given: dict[str, Any] = {
            key: tuple(value) if isinstance(value, list) else value
            for key in ("mean", "std", "crop_pct", "augment", "interpolation")
            if (value := getattr(cfg, key)) is not None
        }
        chosen = dataclasses.replace(chosen, **given)
        for key in ("mean", "std"):
            if len(getattr(chosen, key)) != channels:
                fail(f"data.{key}", list(getattr(chosen, key)), f"{channels} numbers, one per channel of the images")
        return chosen


def fit(x: Tensor, size: int, crop_pct: float, interpolation: str = "bilinear") -> Tensor:
    """Resize the shorter side to floor(size / crop_pct) (antialiased) and take the centre
    size × size crop; images of that size already, at crop_pct 1, come back untouched."""
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    scaled = math.floor(size / crop_pct)
    if (h, w) == (size, size) and scaled == size:
        return x
    if min(h, w) != scaled:
        factor = scaled / min(h, w)
        new = (scaled, max(scaled, round(w * factor))) if h <= w else (max(scaled, round(h * factor)), scaled)
        x = F.interpolate(x.float(), size=new, mode=interpolation, antialias=True, align_corners=False)
    top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
    return x[..., top : top + size, left : left + size]


def fit_stored(
    images: Tensor, size: int, crop_pct: float, interpolation: str = "bilinear", batch: int = 1024
) -> Tensor:
    """`fit` on stored uint8 images, once, rounded back to uint8: an evaluation part as served."""
    import torch

    if tuple(images.shape[-2:]) == (size, size) and math.floor(size / crop_pct) == size:
        return images
    parts = [fit(images[i : i + batch], size, crop_pct, interpolation) for i in range(0, len(images), batch)]
    return torch.cat(parts).round_().clamp_(0, 255).to(images.dtype)


def crop_flip(x: Tensor, generator: torch.Generator) -> Tensor:
    """Pad by PAD with zeros, crop back to the original size at a uniformly random offset, and
    flip horizontally with probability ½, each example on its own: RandomCrop(size, padding=4)
    and RandomHorizontalFlip() of torchvision, applied to a whole batch."""
    import torch
    import torch.nn.functional as F

    n, c, h, w = x.shape
    padded = F.pad(x, (PAD, PAD, PAD, PAD))
    dy, dx = (torch.randint(0, 2 * PAD + 1, (n,), generator=generator).to(x.device) for _ in range(2))
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(c, device=x.device)[None, :, None, None]
    crops = padded[batch, channel, rows, cols]
    return _flip(crops, generator)


def resized_crop_flip(x: Tensor, size: int, generator: torch.Generator, interpolation: str = "bilinear") -> Tensor:
    """RandomResizedCrop(size) and RandomHorizontalFlip() of torchvision, each example on its own:
    a crop of 8–100 % of the area at an aspect ratio of 3/4–4/3 (ten tries, then the centre crop
    of the nearest allowed ratio), resized to size × size."""
    import torch
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    area = h * w
    crops = []
    for image in x:
        draws = torch.rand(10, 2, generator=generator).tolist()
        offsets = torch.rand(2, generator=generator).tolist()
        box = None
        for share, ratio in draws:
            target = area * (SCALE[0] + share * (SCALE[1] - SCALE[0]))
            aspect = math.exp(math.log(RATIO[0]) + ratio * (math.log(RATIO[1]) - math.log(RATIO[0])))
            cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
            if 0 < cw <= w and 0 < ch <= h:
                box = (int(offsets[0] * (h - ch + 1)), int(offsets[1] * (w - cw + 1)), ch, cw)
                break
        if box is None:
            ratio = min(max(w / h, RATIO[0]), RATIO[1])
            cw, ch = (w, round(w / ratio)) if w / h < ratio else (round(h * ratio), h)
            box = ((h - ch) // 2, (w - cw) // 2, ch, cw)
        top, left, ch, cw = box
        crop = image[None, :, top : top + ch, left : left + cw]
        crops.append(F.interpolate(crop, size=(size, size), mode=interpolation, antialias=True, align_corners=False))
    return _flip(torch.cat(crops), generator)


def _flip(x: Tensor, generator: torch.Generator) -> Tensor:
    import torch

    flip = (torch.rand(len(x), generator=generator) < 0.5).to(x.device)[:, None, None, None]
    return torch.where(flip, x.flip(-1), x)


def augment(x: Tensor, prep: Preprocess, size: int, generator: torch.Generator) -> Tensor:
    """A training batch of images in [0, 1] at their stored size, augmented, at size × size."""
    if prep.augment == "resized_crop_flip":
        return resized_crop_flip(x, size, generator, prep.interpolation)
    x = fit(x, size, 1.0, prep.interpolation)
    return crop_flip(x, generator) if prep.augment == "crop_flip" else x


def transforms(prep: Preprocess, size: int, train: bool) -> Any:
    """The same steps as torchvision transforms of a PIL image, for a DataLoader over files."""
    from prunebench.training._torchvision import import_torchvision

    t = import_torchvision().transforms
    mode = t.InterpolationMode(prep.interpolation)
    evaluation = [t.Resize(math.floor(size / prep.crop_pct), mode), t.CenterCrop(size)]
    steps = {
        "none": [t.Resize(size, mode), t.CenterCrop(size)],
        "crop_flip": [
            t.Resize(size, mode),
            t.CenterCrop(size),
            t.RandomCrop(size, padding=PAD),
            t.RandomHorizontalFlip(),
        ],
        "resized_crop_flip": [t.RandomResizedCrop(size, interpolation=mode), t.RandomHorizontalFlip()],
    }[prep.augment]
    return t.Compose([*(steps if train else evaluation), t.ToTensor(), t.Normalize(prep.mean, prep.std)])
