import numpy as np
import torch

from prunebench import data


def test_digits_split_is_stratified_disjoint_and_fixed(default_params):
    cfg = default_params["data"]
    split = data.prepare(cfg)
    parts = [set(split[k]) for k in ("train", "val", "test")]
    assert sum(map(len, parts)) == 1797 and len(set.union(*parts)) == 1797
    assert data.split_sizes(split) == {"train": 1257, "val": 270, "test": 270}
    assert split == data.prepare(cfg)  # same seed, same split
    assert split["test"] != data.prepare(cfg | {"split_seed": 1})["test"]
    _, labels = data._digits_arrays()
    for name in ("val", "test"):  # every class keeps its share, within one example
        counts = np.bincount(labels[split[name]], minlength=10)
        expected = np.bincount(labels, minlength=10) * len(split[name]) / 1797
        assert np.all(np.abs(counts - expected) <= 1.0)


def test_normalisation_comes_from_the_training_split(splits):
    train_x = torch.stack([x for x, _ in splits.train])
    assert abs(train_x.mean().item()) < 1e-4
    assert abs(train_x.std().item() - 1) < 1e-2
    assert splits.input_shape == (1, 8, 8) and splits.num_classes == 10


def test_shuffled_loader_order_follows_the_seed(splits, default_params, cpu):
    def first_labels(seed):
        return next(iter(data.loader(splits.train, default_params["data"], cpu, shuffle=True, seed=seed)))[1]

    assert torch.equal(first_labels(3), first_labels(3))
    assert not torch.equal(first_labels(3), first_labels(4))
