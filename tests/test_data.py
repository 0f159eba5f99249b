import subprocess
import sys
from dataclasses import replace

import numpy as np
import torch

from prunebench.training import data
from prunebench.training._torchvision import import_torchvision
from prunebench.training.batches import batches
from prunebench.training.preprocess import PAD, crop_flip

from helpers import ROOT


def test_digits_split_is_stratified_disjoint_and_fixed(default_params):
    cfg = default_params.data
    split = data.prepare(cfg)
    parts = [set(split[k]) for k in ("train", "val", "test")]
    assert sum(map(len, parts)) == 1797 and len(set.union(*parts)) == 1797
    assert data.split_sizes(split) == {"train": 1257, "val": 270, "test": 270}
    assert split == data.prepare(cfg)  # same seed, same split
    assert split["test"] != data.prepare(replace(cfg, split_seed=1))["test"]
    _, labels = data._digits_arrays()
    for name in ("val", "test"):  # every class keeps its share, within one example
        counts = np.bincount(labels[split[name]], minlength=10)
        expected = np.bincount(labels, minlength=10) * len(split[name]) / 1797
        assert np.all(np.abs(counts - expected) <= 1.0)


def test_images_are_held_as_stored_and_normalised_batch_by_batch(splits, default_params, cpu):
    assert splits.train.images.dtype == torch.uint8 and int(splits.train.images.max()) == 16  # digits: 0..16
    train_x = torch.cat([x for x, _ in batches(splits.train, splits, default_params.data, cpu)])
    assert abs(train_x.mean().item()) < 1e-4  # the normalisation comes from the training split
    assert abs(train_x.std().item() - 1) < 1e-2
    assert splits.input_shape == (1, 8, 8) and splits.num_classes == 10


def test_the_order_follows_the_seed_and_the_epoch(splits, default_params, cpu):
    def first_labels(seed, epoch):
        loader = batches(splits.train, splits, default_params.data, cpu, train=True, seed=seed)
        loader.set_epoch(epoch)
        return next(iter(loader))[1]

    assert torch.equal(first_labels(3, 1), first_labels(3, 1))  # what a resumed run sees again
    assert not torch.equal(first_labels(3, 1), first_labels(4, 1))
    assert not torch.equal(first_labels(3, 1), first_labels(3, 2))
    evaluation = list(batches(splits.test, splits, default_params.data, cpu))
    assert torch.equal(torch.cat([y for _, y in evaluation]), splits.test.labels)  # in order, every example once


def test_the_digits_load_without_importing_scikit_learn():
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from prunebench.training import data; data._digits_arrays(); print('sklearn' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.stdout.strip() == "False", done.stderr


def test_batch_augmentation_is_torchvisions_random_crop_and_flip():
    """Every augmented image is one of the 2 × 9 × 9 crops of the zero-padded image, flipped or
    not, and over many draws the mean image equals that of torchvision's transforms."""
    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.integers(0, 256, (3, 12, 12), dtype=np.uint8))
    x = image.float().div(255).expand(4000, -1, -1, -1)
    ours = crop_flip(x, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(image.float().div(255), (PAD,) * 4)
    crops = torch.stack(
        [
            c
            for dy in range(2 * PAD + 1)
            for dx in range(2 * PAD + 1)
            for c in (padded[:, dy : dy + 12, dx : dx + 12], padded[:, dy : dy + 12, dx : dx + 12].flip(-1))
        ]
    )
    distance = (ours[:, None] - crops[None]).abs().flatten(2).amax(2)  # [draws, candidates]
    assert (distance.min(1).values == 0).all()
    picked = distance.argmin(1)
    assert 0.45 < (picked % 2).float().mean() < 0.55  # flipped half of the time
    t = import_torchvision().transforms
    theirs = t.Compose([t.ToPILImage(), t.RandomCrop(12, padding=PAD), t.RandomHorizontalFlip(), t.ToTensor()])
    torch.manual_seed(0)
    reference = torch.stack([theirs(image) for _ in range(4000)])
    assert (ours.mean(0) - reference.mean(0)).abs().max() < 0.03
