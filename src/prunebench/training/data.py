"""Data set registry, the fixed train/validation/test split, and the data of each part.

The data stage writes a split record (plain JSON: which examples go where, and the
normalisation); every later stage rebuilds the same parts from it. Data sets that fit in
memory (digits, MNIST, FashionMNIST, CIFAR-10/100, and ImageFolder trees of one image size whose
decoded images fit) come back as tensors, uint8 as stored, which `prunebench.training.batches`
normalises and augments batch by batch on the device; larger ImageFolder trees come back as
torchvision data sets with their transforms, for a DataLoader with workers. How images become
input (`prunebench.training.preprocess`) is settled here, from the data set, the weights and
params.yaml. The test split is never used for any choice: early stopping, sensitivity and
calibration all use the training or validation split.
"""

from __future__ import annotations

import copy
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from prunebench.errors import briefly
from prunebench.progress import bar
from prunebench.registry import Registry
from prunebench.task import CLASSIFICATION, LANGUAGE_MODELLING, TASKS, Task
from prunebench.training import text
from prunebench.training.parts import DataMissing, DataSource, Images, Split, Splits
from prunebench.training.preprocess import SMALL, Preprocess, fit_stored, transforms

if TYPE_CHECKING:  # the data stage decides the split without torch (seconds to import)
    from prunebench.params import Data


def stratified_split(labels: np.ndarray, cfg: Data) -> dict[str, list[int]]:
    """Carve test, then validation, out of all examples, keeping class proportions."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    rest, test = train_test_split(index, test_size=cfg.test_fraction, stratify=labels, random_state=cfg.split_seed)
    val_size = cfg.val_fraction / (1 - cfg.test_fraction)
    train, val = train_test_split(rest, test_size=val_size, stratify=labels[rest], random_state=cfg.split_seed)
    return {"train": sorted(train.tolist()), "val": sorted(val.tolist()), "test": sorted(test.tolist())}


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits, read from the file the package ships (importing scikit-learn costs
    seconds per stage): 1,797 images of 8×8 intensities 0..16, as uint8, and their labels."""
    found = importlib.util.find_spec("sklearn")
    assert found is not None and found.origin is not None, "scikit-learn is a dependency"
    package = Path(found.origin).parent
    table = np.loadtxt(package / "datasets" / "data" / "digits.csv.gz", delimiter=",")
    return table[:, :-1].astype(np.uint8).reshape(-1, 1, 8, 8), table[:, -1].astype(np.int64)


DIGITS_SCALE = 16.0


def _prepare_digits(cfg: Data) -> Split:
    images, labels = _digits_arrays()
    split = stratified_split(labels, cfg)
    train = images[split["train"]] / DIGITS_SCALE
    return {
        "dataset": "digits",
        **split,
        "mean": [float(train.mean())],
        "std": [float(train.std())],
        "in_channels": 1,
        "num_classes": 10,
        "image_size": 8,
    }


def _load_digits(split: Split, cfg: Data, weights: dict[str, Any] | None) -> Splits:
    import torch

    images, labels = (torch.from_numpy(a) for a in _digits_arrays())

    def part(name: str) -> Images:
        index = torch.tensor(split[name])
        return Images(images[index], labels[index])

    prep = Preprocess(tuple(split["mean"]), tuple(split["std"])).settle(cfg, weights, 1)
    return _in_memory(part("train"), part("val"), part("test"), 1, 10, 8, prep, DIGITS_SCALE)


def _in_memory(
    train: Images, val: Images, test: Images, channels: int, classes: int, size: int, prep: Preprocess, scale: float
) -> Splits:
    """In-memory parts, the evaluation ones resized and cropped once (`preprocess.fit`)."""
    val, test = (
        Images(fit_stored(p.images, size, prep.crop_pct, prep.interpolation), p.labels, fitted=True)
        for p in (val, test)
    )
    return Splits(train, val, test, channels, classes, size, prep, scale)


@dataclass(frozen=True)
class Torchvision:
    """A torchvision data set: validation carved (stratified) from its training part, its own
    test part as the test split; standard normalisation, augmentation on training only."""

    name: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_classes: int
    image_size: int
    expected: str  # what to put under data.root when offline
    augment: str = "none"  # the default data.augment
    crop_pct: float = 1.0  # the default data.crop_pct

    def default_augment(self, image_size: int) -> str:
        """ImageNet's random resized crop (8–100 % of the area) is for large images; on small ones
        (below `preprocess.SMALL`) it is nothing like a test image: CIFAR's crop and flip there."""
        return "crop_flip" if self.augment == "resized_crop_flip" and image_size < SMALL else self.augment

    def _open(self, cfg: Data, train: bool):
        from prunebench.training._torchvision import import_torchvision

        datasets = import_torchvision().datasets
        root = Path(cfg.root)
        try:
            if self.name == "imagefolder":
                return datasets.ImageFolder(root / ("train" if train else "val"))
            cls = {
                "mnist": datasets.MNIST,
                "fashionmnist": datasets.FashionMNIST,
                "cifar10": datasets.CIFAR10,
                "cifar100": datasets.CIFAR100,
            }[self.name]
            return cls(root, train=train, download=cfg.download)
        except (RuntimeError, FileNotFoundError) as error:
            raise DataMissing(
                f"data.root: no {self.name} data in {root.resolve()}: {self.expected}, "
                f"or set data.download: true on a machine with internet"
            ) from error

    def prepare(self, cfg: Data) -> Split:
        if self.name == "imagefolder":
            classes_of(Path(cfg.root))
        train = self._open(cfg, train=True)
        labels = np.asarray(train.targets)
        test = self._open(cfg, train=False)  # the test part must be there too
        if self.name == "imagefolder":
            check_images([path for path, _ in train.samples + test.samples], len(self.mean))
        index = np.arange(len(labels))
        from sklearn.model_selection import train_test_split

        fit, val = train_test_split(index, test_size=cfg.val_fraction, stratify=labels, random_state=cfg.split_seed)
        image = cfg.image_size or self.image_size
        return {
            "dataset": self.name,
            "train": sorted(fit.tolist()),
            "val": sorted(val.tolist()),
            "test": list(range(len(test))),
            "mean": list(self.mean),
            "std": list(self.std),
            "in_channels": len(self.mean),
            "num_classes": len(getattr(train, "classes", [])) or self.num_classes,
            "image_size": image,
        }

    def load(self, split: Split, cfg: Data, weights: dict[str, Any] | None) -> Splits:
        import torch

        shape = (split["in_channels"], split["num_classes"], split["image_size"])
        prep = Preprocess(
            tuple(split["mean"]), tuple(split["std"]), self.crop_pct, self.default_augment(split["image_size"])
        )
        prep = prep.settle(cfg, weights, split["in_channels"])
        if self.name == "imagefolder":
            return self._load_files(split, cfg, shape, prep)
        train, test = _tensors(self._open(cfg, True)), _tensors(self._open(cfg, False))
        fit, val = (
            Images(train.images[torch.tensor(split[k])], train.labels[torch.tensor(split[k])]) for k in ("train", "val")
        )
        return _in_memory(fit, val, test, *shape, prep, 255.0)

    def _load_files(self, split: Split, cfg: Data, shape: tuple[int, int, int], prep: Preprocess) -> Splits:
        """ImageFolder: decoded once into memory when its images share one size and fit in
        MEMORY_SHARE of this machine's memory; else decoded per example by DataLoader workers,
        with torchvision's transforms."""
        from torch.utils.data import Subset

        size = split["image_size"]
        train_set, test_set = self._open(cfg, True), self._open(cfg, False)
        decoded = _decode(train_set, test_set, split, shape[0])
        if decoded is not None:
            return _in_memory(*decoded, *shape, prep, 255.0)
        train = Subset(_transformed(train_set, transforms(prep, size, train=True)), split["train"])
        val = Subset(_transformed(train_set, transforms(prep, size, train=False)), split["val"])
        test = _transformed(test_set, transforms(prep, size, train=False))
        return Splits(train, val, test, *shape, prep, 1.0)


def _transformed(dataset: Any, transform: Any) -> Any:
    """The same scanned ImageFolder with its own transform: the tree is listed once, not per part."""
    dataset = copy.copy(dataset)
    dataset.transform = transform
    return dataset


MEMORY_SHARE = 0.25  # of this machine's memory that decoded ImageFolder images may take


def _first_size(files: list[str]) -> tuple[int, int]:
    """(width, height) of the first image, from its header alone."""
    from PIL import Image

    with Image.open(files[0]) as image:
        return image.size


def _fits_in_memory(count: int, channels: int, size: tuple[int, int]) -> bool:
    """Whether `count` images of `size` (width, height), decoded, take at most MEMORY_SHARE of the memory."""
    import os

    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return count * channels * size[0] * size[1] <= MEMORY_SHARE * memory


def _decode(train_set: Any, test_set: Any, split: Split, channels: int) -> tuple[Images, Images, Images] | None:
    """The three parts of an ImageFolder tree as uint8 tensors, decoded once (None: its images
    differ in size, or would take more than MEMORY_SHARE of the memory)."""
    import torch
    from PIL import Image

    files = [path for path, _ in train_set.samples + test_set.samples]
    width, height = _first_size(files)
    if not _fits_in_memory(len(files), channels, (width, height)):
        return None
    for path in files:
        with Image.open(path) as image:
            if image.size != (width, height):
                return None
    mode = "L" if channels == 1 else "RGB"

    def part(dataset: Any, index: list[int], desc: str) -> Images:
        images = np.empty((len(index), height, width, channels), dtype=np.uint8)
        for row, i in enumerate(bar(index, desc=desc, unit="image", leave=False)):
            with Image.open(dataset.samples[i][0]) as image:
                images[row] = np.asarray(image.convert(mode)).reshape(height, width, channels)
        labels = torch.tensor([dataset.targets[i] for i in index], dtype=torch.int64)
        return Images(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), labels)

    return (
        part(train_set, split["train"], "decode train"),
        part(train_set, split["val"], "decode val"),
        part(test_set, list(range(len(test_set))), "decode test"),
    )


def _tensors(dataset) -> Images:
    """A torchvision MNIST- or CIFAR-style data set's arrays: uint8 images as [N, C, H, W]."""
    import torch

    images = torch.as_tensor(np.asarray(dataset.data))
    images = images.unsqueeze(1) if images.dim() == 3 else images.permute(0, 3, 1, 2)
    return Images(images.contiguous(), torch.as_tensor(np.asarray(dataset.targets), dtype=torch.int64))


DATASETS: Registry[DataSource | Torchvision] = Registry("data.name")
DATASETS.register("digits")(DataSource(_prepare_digits, _load_digits))
for _text in text.SOURCES:
    DATASETS.register(_text.name)(DataSource(_text.prepare, _text.load))
DATASETS.register("mnist")(
    Torchvision("mnist", (0.1307,), (0.3081,), 10, 28, "put the MNIST idx files in <root>/MNIST/raw/")
)
DATASETS.register("fashionmnist")(
    Torchvision(
        "fashionmnist", (0.2860,), (0.3530,), 10, 28, "put the FashionMNIST idx files in <root>/FashionMNIST/raw/"
    )
)
DATASETS.register("cifar10")(
    Torchvision(
        "cifar10",
        (0.4914, 0.4822, 0.4465),
        (0.2470, 0.2435, 0.2616),
        10,
        32,
        "unpack cifar-10-python.tar.gz into <root>/cifar-10-batches-py/",
        augment="crop_flip",
    )
)
DATASETS.register("cifar100")(
    Torchvision(
        "cifar100",
        (0.5071, 0.4865, 0.4409),
        (0.2673, 0.2564, 0.2762),
        100,
        32,
        "unpack cifar-100-python.tar.gz into <root>/cifar-100-python/",
        augment="crop_flip",
    )
)
DATASETS.register("imagefolder")(
    Torchvision(
        "imagefolder",
        (0.485, 0.456, 0.406),
        (0.229, 0.224, 0.225),
        0,
        224,
        "put a train/ and a val/ tree of class folders in <root>",
        augment="resized_crop_flip",
        crop_pct=0.875,  # ImageNet's 256 → 224
    )
)


def shape_of(cfg: Data) -> dict[str, int]:
    """What the model of the data set `cfg` names is built for (`Splits.factory_shape`), without
    reading its images or text: what the check stage builds the model for, before the data stage runs."""
    if cfg.name in text.NAMES:
        return {"vocab_size": text.vocab_of(cfg), "sequence_length": cfg.sequence_length}
    if cfg.name == "digits":
        return {"in_channels": 1, "num_classes": 10, "image_size": 8}
    source = DATASETS[cfg.name]
    assert isinstance(source, Torchvision)
    classes = source.num_classes
    if cfg.name == "imagefolder":
        classes = len(classes_of(Path(cfg.root)))
    return {"in_channels": len(source.mean), "num_classes": classes, "image_size": cfg.image_size or source.image_size}


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")  # torchvision's


def classes_of(root: Path) -> list[str]:
    """The class folders of an ImageFolder tree, checked in seconds, before any image is read: a
    train/ and a val/ tree, every class folder holding images, val/ no class that train/ lacks
    (its labels would mean other classes). Each fault is one line naming the folder."""
    train, val = root / "train", root / "val"
    if not train.is_dir() or not val.is_dir():
        missing = "train/" if not train.is_dir() else "val/"
        raise DataMissing(
            f"data.root: no imagefolder data in {root.resolve()}: no {missing}; "
            "put a train/ and a val/ tree of class folders in it"
        )
    found = {part: sorted(d.name for d in part.iterdir() if d.is_dir()) for part in (train, val)}
    empty = [
        part / name
        for part, names in found.items()
        for name in names
        if not any(f.suffix.lower() in IMAGE_SUFFIXES for f in (part / name).iterdir())
    ]
    if empty:
        more = f" (and {len(empty) - 1} more class folders)" if len(empty) > 1 else ""
        raise DataMissing(f"data.root: {empty[0]} holds no image{more}: put its images in it, or remove it")
    extra = [name for name in found[val] if name not in found[train]]
    if extra:
        raise DataMissing(
            f"data.root: {val / extra[0]}: a class that {train} does not have"
            f"{f' (and {len(extra) - 1} more)' if len(extra) > 1 else ''}: every class of val/ must be one of train/"
        )
    return found[train]


def check_images(files: list[str], channels: int) -> None:
    """Every image of the tree opens, before any training: decoded whole where the tree is small
    enough to be decoded into memory anyway (`_decode`), else read through (`verify`, which finds a
    truncated PNG). The first bad file is one line, with how many more there are."""
    from PIL import Image

    whole = _fits_in_memory(len(files), channels, _first_size(files))
    bad: list[tuple[str, str]] = []
    for path in bar(files, desc="check images", unit="image", leave=False):
        try:
            with Image.open(path) as image:
                image.load() if whole else image.verify()
        except Exception as error:  # whatever PIL raises on a bad file is the finding
            bad.append((path, briefly(error)))
    if bad:
        first, why = bad[0]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise DataMissing(f"data.root: {first}: unreadable or truncated image ({why}){more}: fix or remove it")


def prepare(cfg: Data) -> Split:
    return DATASETS[cfg.name].prepare(cfg)


def load(split: Split, cfg: Data, weights: dict[str, Any] | None = None) -> Splits:
    """The parts of `split`; `weights`: the preprocessing the model's weights expect
    (`pretrained.weights_preprocessing`), where params.yaml does not say."""
    return DATASETS[split["dataset"]].load(split, cfg, weights)


def task_of(cfg: Data) -> Task:
    """The task of the data set `cfg` names: language modelling on text, else classification."""
    return TASKS[LANGUAGE_MODELLING if cfg.name in text.NAMES else CLASSIFICATION]


def split_sizes(split: Split) -> dict[str, int]:
    return {name: len(split[name]) for name in ("train", "val", "test")}
