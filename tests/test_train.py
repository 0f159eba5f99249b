from dataclasses import replace

import torch

from prunebench.training import models
from prunebench.training.batches import batches
from prunebench.training.loops import evaluate, fit, seed_everything


def train_once(splits, params, cpu, epochs=3, width=8):
    seed_everything(0)
    model = models.build(models.spec({"name": "cnn", "width": width, "hidden": 16}, 1, 10, 8))
    history = fit(
        model,
        batches(splits.train, splits, params.data, cpu, train=True, seed=0),
        batches(splits.val, splits, params.data, cpu),
        replace(params.train, epochs=epochs),
        cpu,
    )
    return model, history


def test_same_params_and_seed_give_identical_results_on_cpu(splits, default_params, cpu):
    a, history_a = train_once(splits, default_params, cpu)
    b, history_b = train_once(splits, default_params, cpu)
    assert history_a == history_b
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_training_learns_the_digits(splits, default_params, cpu):
    model, history = train_once(splits, default_params, cpu, epochs=5, width=32)
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5]
    test = evaluate(model, batches(splits.test, splits, default_params.data, cpu), cpu)
    assert test["accuracy"] > 0.9  # chance is 0.1


def test_early_stopping_stops_and_keeps_the_best_weights(splits, default_params, cpu):
    cfg = replace(default_params.train, epochs=30, lr=2.0, patience=2)  # lr far too high: diverges
    seed_everything(0)
    model = models.build(models.spec({"name": "cnn", "width": 8, "hidden": 16}, 1, 10, 8))
    val = batches(splits.val, splits, default_params.data, cpu)
    history = fit(model, batches(splits.train, splits, default_params.data, cpu, train=True), val, cfg, cpu)
    assert len(history) < 30
    best = min(h["val_loss"] for h in history)
    assert evaluate(model, val, cpu)["loss"] == best
