"""Shared fixtures: the default params, the digits data, and tiny trained models."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from prunebench import data, models, params
from prunebench.train import pick_device

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def default_params() -> dict:
    return params.load(ROOT / "params.yaml")


@pytest.fixture
def cfg(default_params) -> dict:
    """A private, mutable copy of the default params."""
    return copy.deepcopy(default_params)


@pytest.fixture(scope="session")
def splits(default_params) -> data.Splits:
    return data.load(data.prepare(default_params["data"]), default_params["data"])


@pytest.fixture(scope="session")
def cpu() -> torch.device:
    return pick_device("cpu")


def small_cnn(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return models.build(models.spec({"name": "cnn", "width": 8, "hidden": 16}, 1, 10, 8)).eval()
