"""What every stage script shares: output paths, the data and loaders, and assessing a model.

Paths are relative to the repository root, where DVC runs the stages.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from prunebench import data, measure
from prunebench.io import read_json
from prunebench.train import evaluate, pick_device

SPLIT = Path("data/prepared/split.json")
PARAMS_OK = Path("checks/params.ok")
RESULTS = Path("results/results.csv")
SENSITIVITY = Path("plots/sensitivity/sensitivity.csv")


def base_model(seed: int) -> Path:
    return Path(f"models/base/{seed}.pt")


def pruned_model(method: str, seed: int) -> Path:
    return Path(f"models/pruned/{method}/{seed}.pt")


def finetuned_model(method: str, seed: int) -> Path:
    return Path(f"models/finetuned/{method}/{seed}.pt")


@dataclass
class Workbench:
    """The device, the data splits and the evaluation loaders, set up once per stage."""

    params: dict[str, Any]
    device: torch.device
    splits: data.Splits
    val: DataLoader
    test: DataLoader

    @classmethod
    def open(cls, params: dict[str, Any]) -> "Workbench":
        if not SPLIT.exists():
            raise FileNotFoundError(f"{SPLIT} is missing: run the data stage first (dvc repro data)")
        device = pick_device(params["device"])
        splits = data.load(read_json(SPLIT), params["data"])
        cfg = params["data"]
        return cls(params, device, splits, data.loader(splits.val, cfg, device), data.loader(splits.test, cfg, device))

    def train_loader(self, seed: int) -> DataLoader:
        return data.loader(self.splits.train, self.params["data"], self.device, shuffle=True, seed=seed)

    def assess(self, model: nn.Module) -> dict[str, float]:
        """Test accuracy and loss, size, MACs and latency of a model."""
        return {**evaluate(model, self.test, self.device),
                **measure.profile(model, self.splits.input_shape, self.params["measure"], self.device)}


def summarize(per_seed: dict[int, dict[str, float]], **extra: Any) -> dict[str, Any]:
    """A stage's metrics file: the mean over seeds first (what `dvc exp show` lists), then each seed."""
    keys = next(iter(per_seed.values())).keys()
    mean = {k: statistics.fmean(r[k] for r in per_seed.values()) for k in keys}
    return {**extra, "mean": mean, "seeds": {str(s): r for s, r in per_seed.items()}}
