"""Small builders the tests share (fixtures live in conftest.py; no test module imports another)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

from prunebench import models
from prunebench.methods import Context

ROOT = Path(__file__).resolve().parents[1]


def small_cnn(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return models.build(models.spec({"name": "cnn", "width": 8, "hidden": 16}, 1, 10, 8)).eval()


def context(batches: Iterable = (), seed: int = 0, input_shape: tuple[int, ...] = (1, 8, 8)) -> Context:
    """A method's context on the CPU: `batches` as calibration data, randomness from `seed`, digits-sized inputs."""
    batches = list(batches)
    return Context(batches=lambda: iter(batches), device=torch.device("cpu"),
                   generator=torch.Generator().manual_seed(seed), input_shape=input_shape)


def prunable_zero_fraction(model: torch.nn.Module) -> float:
    weights = [m.weight for m in models.prunable_layers(model).values()]
    return sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
