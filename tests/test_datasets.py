"""The torchvision data sets, offline, on tiny files written in torchvision's own formats."""

import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from prunebench import params
from prunebench.training import data
from prunebench.training._torchvision import import_torchvision
from prunebench.training.batches import batches

from helpers import ROOT, write_mnist_files

LABELS = np.arange(100) % 10


def write_mnist(root, folder: str) -> None:
    rng = np.random.default_rng(0)
    write_mnist_files(
        root / folder / "raw",
        {
            "train": (rng.integers(0, 256, (100, 28, 28)), LABELS),
            "t10k": (rng.integers(0, 256, (20, 28, 28)), LABELS[:20]),
        },
    )


def write_cifar(root, classes: int) -> None:
    rng = np.random.default_rng(0)
    if classes == 10:
        folder, key, train_files, meta = (
            root / "cifar-10-batches-py",
            "labels",
            [f"data_batch_{i}" for i in range(1, 6)],
            ("batches.meta", "label_names"),
        )
    else:
        folder, key, train_files, meta = (
            root / "cifar-100-python",
            "fine_labels",
            ["train"],
            ("meta", "fine_label_names"),
        )
    folder.mkdir(parents=True)
    labels = LABELS  # 10 labels in use, enough examples each to stratify; the meta lists all classes
    chunks = np.array_split(np.arange(100), len(train_files))
    for name, idx in zip(train_files, chunks):
        with open(folder / name, "wb") as f:
            pickle.dump({"data": rng.integers(0, 256, (len(idx), 3072), dtype=np.uint8), key: labels[idx].tolist()}, f)
    with open(folder / ("test_batch" if classes == 10 else "test"), "wb") as f:
        pickle.dump({"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8), key: labels[:20].tolist()}, f)
    with open(folder / meta[0], "wb") as f:
        pickle.dump({meta[1]: [f"class{i}" for i in range(classes)]}, f)


def write_imagefolder(root) -> None:
    rng = np.random.default_rng(0)
    for part, n in (("train", 10), ("val", 2)):
        for c in range(5):
            (root / part / f"class{c}").mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(
                    root / part / f"class{c}" / f"{i}.png"
                )


@pytest.fixture
def no_checksums(monkeypatch):
    """Tiny files cannot match the published md5 sums; everything else is torchvision's code."""
    monkeypatch.setattr(import_torchvision().datasets.cifar, "check_integrity", lambda *args, **kwargs: True)


@pytest.mark.parametrize(
    ("name", "writer", "shape", "classes"),
    [
        ("mnist", lambda r: write_mnist(r, "MNIST"), (1, 28, 28), 10),
        ("fashionmnist", lambda r: write_mnist(r, "FashionMNIST"), (1, 28, 28), 10),
        ("cifar10", lambda r: write_cifar(r, 10), (3, 32, 32), 10),
        ("cifar100", lambda r: write_cifar(r, 100), (3, 32, 32), 100),
        ("imagefolder", write_imagefolder, (3, 32, 32), 5),
    ],
)
def test_each_loader_prepares_a_split_and_yields_normalised_batches(
    tmp_path, no_checksums, cfg, name, writer, shape, classes
):
    writer(tmp_path)
    cfg["data"] |= {
        "name": name,
        "root": str(tmp_path),
        "val_fraction": 0.2,
        "batch_size": 8,
        "image_size": 32 if name == "imagefolder" else None,
    }
    section = params.parse(cfg).data
    split = data.prepare(section)
    sizes = data.split_sizes(split)
    train_total = 50 if name == "imagefolder" else 100
    assert sizes["train"] + sizes["val"] == train_total and sizes["val"] == train_total // 5
    assert set(split["train"]).isdisjoint(split["val"])
    assert split["num_classes"] == classes and "data" not in split  # indices, never the images
    splits = data.load(split, section)
    assert splits.input_shape == shape and splits.num_classes == classes
    x, y = next(iter(batches(splits.test, splits, section, torch.device("cpu"))))
    assert x.shape == (8, *shape) and y.max() < classes
    assert abs(float(x.mean())) < 1.5  # normalised with the data set's constants
    x_train, _ = next(iter(batches(splits.train, splits, section, torch.device("cpu"), train=True)))
    assert x_train.shape == (8, *shape)


@pytest.mark.parametrize("name", ["mnist", "cifar10", "imagefolder"])
def test_missing_data_stops_with_one_line_naming_the_path(tmp_path, cfg, name):
    cfg["data"] |= {"name": name, "root": str(tmp_path / "nowhere")}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(cfg))
    done = subprocess.run([sys.executable, str(ROOT / "stages/data.py")], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode != 0
    message = done.stderr.strip()
    assert "\n" not in message and message.startswith(f"data: data.root: no {name} data in {tmp_path / 'nowhere'}")
    # an ImageFolder tree is the user's own: nothing to download, it says what the tree must hold
    assert (
        "put a train/ and a val/ tree of class folders" if name == "imagefolder" else "data.download: true"
    ) in message
    assert not (tmp_path / "data").exists()
