"""Issue 21: preprocessing that fits the weights: crop_pct, mean, std and augment for the
in-memory and the file-reading paths, ImageFolder trees decoded once, the weights' own transforms."""

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from prunebench import params
from prunebench.params import ParamError
from prunebench.training import data, preprocess, pretrained
from prunebench.training.batches import batches

CPU = torch.device("cpu")


def write_tree(root, size=(32, 32), other=None) -> None:
    """A small ImageFolder tree of RGB PNGs, `size` (width, height); `other`: one image elsewhere of that size."""
    rng = np.random.default_rng(0)
    for part, n in (("train", 6), ("val", 2)):
        for c in range(3):
            (root / part / f"class{c}").mkdir(parents=True)
            for i in range(n):
                shape = other if other and part == "val" and c == i == 0 else size
                pixels = rng.integers(0, 256, (shape[1], shape[0], 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / part / f"class{c}" / f"{i}.png")


def section(cfg, root, **data_keys) -> params.Data:
    cfg["data"] |= {"name": "imagefolder", "root": str(root), "val_fraction": 1 / 3, "batch_size": 64} | data_keys
    return params.parse(cfg).data


def test_crop_pct_1_leaves_a_32x32_image_bit_identical_to_its_tensor_on_both_paths(tmp_path, cfg, monkeypatch):
    write_tree(tmp_path)
    cfg_data = section(cfg, tmp_path, image_size=32, crop_pct=1.0, mean=[0.5, 0.4, 0.3], std=[0.2, 0.25, 0.3])
    split = data.prepare(cfg_data)
    splits = data.load(split, cfg_data)
    assert splits.in_memory  # one image size, a few KiB: decoded once
    x, y = next(iter(batches(splits.test, splits, cfg_data, CPU)))
    files = sorted((tmp_path / "val").glob("*/*.png"))
    pixels = torch.stack([torch.from_numpy(np.array(Image.open(f))).permute(2, 0, 1) for f in files])
    mean, std = torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1), torch.tensor([0.2, 0.25, 0.3]).view(1, 3, 1, 1)
    assert torch.equal(x, (pixels.float() / 255 - mean) / std)
    assert y.tolist() == [0, 0, 1, 1, 2, 2]
    monkeypatch.setattr(data, "MEMORY_SHARE", 0.0)  # too large for memory: the DataLoader path
    files_path = data.load(split, cfg_data)
    assert not files_path.in_memory
    x_files, _ = next(iter(batches(files_path.test, files_path, dataclasses.replace(cfg_data, num_workers=0), CPU)))
    assert torch.equal(x_files, x)


def test_crop_pct_resizes_then_centre_crops_like_torchvision_on_both_paths(tmp_path, cfg, monkeypatch):
    write_tree(tmp_path, size=(50, 60))
    cfg_data = section(cfg, tmp_path, image_size=32, crop_pct=0.8, num_workers=0)
    split = data.prepare(cfg_data)
    memory = data.load(split, cfg_data)
    monkeypatch.setattr(data, "MEMORY_SHARE", 0.0)
    files = data.load(split, cfg_data)
    assert memory.in_memory and not files.in_memory and memory.prep.crop_pct == 0.8
    assert memory.test.images.shape == (6, 3, 32, 32)  # resized to 40 × 48, cropped to 32 × 32, once
    ours, _ = next(iter(batches(memory.test, memory, cfg_data, CPU)))
    theirs, _ = next(iter(batches(files.test, files, cfg_data, CPU)))
    assert ours.shape == theirs.shape == (6, 3, 32, 32)
    std = torch.tensor(memory.prep.std).view(1, 3, 1, 1)
    difference = ((ours - theirs) * std).abs()  # in units of intensity, [0, 1]
    assert float(difference.mean()) < 0.01 and float(difference.max()) < 0.1  # PIL's resampling, not ours


def test_images_of_several_sizes_stay_files(tmp_path, cfg):
    write_tree(tmp_path, other=(36, 36))
    cfg_data = section(cfg, tmp_path, image_size=32)
    splits = data.load(data.prepare(cfg_data), cfg_data)
    assert not splits.in_memory
    # ImageFolder's own defaults; at 32 px CIFAR's augmentation, not ImageNet's
    assert splits.prep == preprocess.Preprocess((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 0.875, "crop_flip")


def test_mean_std_of_the_wrong_length_are_one_line(tmp_path, cfg):
    write_tree(tmp_path)
    cfg_data = section(cfg, tmp_path, image_size=32, mean=[0.5])
    with pytest.raises(ParamError, match=r"^params.yaml: data.mean = \[0.5\]: expected 3 numbers, one per channel"):
        data.load(data.prepare(cfg_data), cfg_data)


def test_the_weights_own_transforms_are_the_default_and_params_yaml_wins(tmp_path, cfg):
    expected = pretrained.weights_preprocessing(params.Model(name="resnet18", weights="IMAGENET1K_V1"))
    assert expected == {
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
        "crop_pct": 224 / 256,
        "interpolation": "bilinear",
    }
    assert pretrained.weights_preprocessing(params.Model(name="resnet18")) is None
    write_tree(tmp_path)
    weights = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "crop_pct": 0.9}
    cfg_data = section(cfg, tmp_path, image_size=32, std=[0.1, 0.2, 0.3])
    prep = data.load(data.prepare(cfg_data), cfg_data, weights).prep
    assert prep == preprocess.Preprocess((0.5, 0.5, 0.5), (0.1, 0.2, 0.3), 0.9, "crop_flip")
    grey = preprocess.Preprocess((0.13,), (0.31,)).settle(dataclasses.replace(cfg_data, std=None), weights, 1)
    assert grey == preprocess.Preprocess((0.13,), (0.31,), 0.9)


@pytest.mark.parametrize("kind", ["crop_flip", "resized_crop_flip", "none"])
def test_each_augmentation_follows_its_generator_and_keeps_the_size(kind):
    x = torch.rand(16, 3, 40, 40)
    prep = preprocess.Preprocess((0.5,) * 3, (0.5,) * 3, 1.0, kind)
    first = preprocess.augment(x, prep, 32, torch.Generator().manual_seed(1))
    again = preprocess.augment(x, prep, 32, torch.Generator().manual_seed(1))
    other = preprocess.augment(x, prep, 32, torch.Generator().manual_seed(2))
    assert first.shape == (16, 3, 32, 32) and torch.equal(first, again)
    assert torch.equal(first, other) == (kind == "none")


def test_resized_crops_cover_8_to_100_percent_of_the_area_at_torchvisions_ratios():
    """Each pixel holds its own coordinates: what a crop shows says which box it took."""
    rows, cols = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    image = torch.stack([rows, cols, torch.zeros(64, 64)])[None].repeat(400, 1, 1, 1)
    crops = preprocess.resized_crop_flip(image, 16, torch.Generator().manual_seed(0))
    height = crops[:, 0].amax((1, 2)) - crops[:, 0].amin((1, 2)) + 1
    width = crops[:, 1].amax((1, 2)) - crops[:, 1].amin((1, 2)) + 1
    share, aspect = height * width / 64**2, width / height
    assert float(share.min()) > 0.05 and float(share.max()) <= 1.0 and float(share.median()) > 0.3
    assert float(aspect.min()) > 0.7 and float(aspect.max()) < 1.45
    flipped = crops[:, 1, 0, 0] > crops[:, 1, 0, -1]
    assert 0.4 < float(flipped.float().mean()) < 0.6


def test_faults_of_an_image_folder_are_one_line_naming_the_folder_or_file(tmp_path, cfg):
    """Issue 36: an empty class folder in val/ and a truncated PNG, found before any training."""
    write_tree(tmp_path)
    cfg_data = section(cfg, tmp_path, image_size=32)
    (tmp_path / "val" / "class9").mkdir()  # a class the training part has not, empty
    with pytest.raises(data.DataMissing, match=r"^data.root: .*/val/class9 holds no image: put its images in it"):
        data.shape_of(cfg_data)  # the check stage, in seconds
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(tmp_path / "val" / "class9" / "0.png")
    with pytest.raises(data.DataMissing, match=r"val/class9: a class that .*train does not have"):
        data.prepare(cfg_data)
    (tmp_path / "val" / "class9" / "0.png").unlink()
    (tmp_path / "val" / "class9").rmdir()
    for name in ("train/class1/3.png", "val/class2/0.png"):  # cut short, as a broken copy leaves them
        path = tmp_path / name
        path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(data.DataMissing) as raised:
        data.prepare(cfg_data)  # the data stage, before any training
    message = str(raised.value)
    assert "\n" not in message and "train/class1/3.png: unreadable or truncated image (" in message
    assert message.endswith("(and 1 more): fix or remove it")


@pytest.mark.parametrize("in_memory", [True, False])
def test_a_small_image_folder_trains_with_cifars_crop_not_imagenets(tmp_path, cfg, monkeypatch, in_memory):
    """Issue 35: ImageNet's random resized crop (8–100 % of the area) on 32 × 32 images is nothing
    like a test image, and BatchNorm recalibrated on such batches cost a pruned ResNet-56 13 pp.
    Below 64 px an ImageFolder tree takes CIFAR's crop and flip by default; params.yaml wins."""
    write_tree(tmp_path)
    cfg_data = section(cfg, tmp_path, image_size=32, crop_pct=1.0, num_workers=0)
    if not in_memory:
        monkeypatch.setattr(data, "MEMORY_SHARE", 0.0)
    splits = data.load(data.prepare(cfg_data), cfg_data)
    assert splits.in_memory == in_memory and splits.prep.augment == "crop_flip"
    chosen = section(cfg, tmp_path, image_size=32, augment="resized_crop_flip")
    assert data.load(data.prepare(chosen), chosen).prep.augment == "resized_crop_flip"
    large = section(cfg, tmp_path, image_size=64, augment=None)
    assert data.load(data.prepare(large), large).prep.augment == "resized_crop_flip"  # ImageNet's from 64 px
