"""Shared fixtures: the default params, the digits data, and tiny trained models."""

from __future__ import annotations

import copy

import pytest
import torch

from prunebench import data, params
from prunebench.train import pick_device

from helpers import ROOT


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

