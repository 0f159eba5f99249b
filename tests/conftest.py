"""Shared fixtures: the default params, the digits data, and tiny trained models."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from prunebench import params
from prunebench.runtime import pick_device
from prunebench.training import data

from helpers import ROOT


@pytest.fixture(scope="session")
def default_params() -> params.Params:
    return params.load(ROOT / "params.yaml")


@pytest.fixture
def cfg() -> dict[str, Any]:
    """A private, mutable copy of params.yaml as plain data."""
    return params.read(ROOT / "params.yaml")


@pytest.fixture(scope="session")
def splits(default_params) -> data.Splits:
    return data.load(data.prepare(default_params.data), default_params.data)


@pytest.fixture(scope="session")
def cpu() -> torch.device:
    return pick_device("cpu")
