"""What the stages share (the device, the data and loaders, assessing a model) and the two
stages that train per seed: base training and fine-tuning."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from prunebench import data, measure, models, paths, surgery
from prunebench.io import read_json, write_csv, write_json
from prunebench.pruning import mask_keeper
from prunebench.train import EPOCH_COLUMNS, evaluate, fit, pick_device, prepare_model, seed_everything


@dataclass
class Workbench:
    """The device, the data splits and the evaluation loaders, set up once per stage."""

    params: dict[str, Any]
    device: torch.device
    splits: data.Splits
    val: DataLoader
    test: DataLoader

    @classmethod
    def open(cls, params: dict[str, Any]) -> Workbench:
        if not paths.SPLIT.exists():
            raise FileNotFoundError(f"{paths.SPLIT} is missing: run the data stage first (dvc repro data)")
        device = pick_device(params["device"])
        splits = data.load(read_json(paths.SPLIT), params["data"])
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


def train_base(params: dict[str, Any]) -> None:
    """The train stage: one base model per seed, its test metrics and training curves."""
    bench = Workbench.open(params)
    s = bench.splits
    spec = models.spec(params["model"], s.in_channels, s.num_classes, s.image_size)
    results, curves = {}, []
    for seed in tqdm(params["seeds"], desc="base models", unit="seed"):
        seed_everything(seed)
        model = prepare_model(models.build(spec), bench.device)
        history = fit(model, bench.train_loader(seed), bench.val, params["train"], bench.device,
                      desc=f"train seed {seed}")
        results[seed] = bench.assess(model)
        surgery.save(paths.base_model(seed), model, spec)
        curves += [{"seed": seed, **record} for record in history]
        tqdm.write(f"seed {seed}: test accuracy {results[seed]['accuracy']:.4f}")
    write_csv(paths.TRAIN_CURVES, curves, ("seed", *EPOCH_COLUMNS))
    write_json(paths.BASE_METRICS, summarize(results, model=params["model"]["name"]))


def finetune_method(key: str, params: dict[str, Any]) -> None:
    """The finetune stage: every pruned model of one method, with the same budget; masks stay applied."""
    bench = Workbench.open(params)
    results, curves = {}, []
    for seed in tqdm(params["seeds"], desc=f"finetune {key}", unit="seed"):
        seed_everything(seed)
        model, masks, spec = surgery.load(paths.pruned_model(key, seed))
        model = prepare_model(model, bench.device)
        history = fit(model, bench.train_loader(seed), bench.val, params["finetune"], bench.device,
                      after_step=mask_keeper(model, masks), desc=f"finetune seed {seed}")
        results[seed] = bench.assess(model)
        surgery.save(paths.finetuned_model(key, seed), model, spec, masks)
        curves += [{"seed": seed, **record} for record in history]
        tqdm.write(f"{key} seed {seed}: test accuracy {results[seed]['accuracy']:.4f}")
    write_json(paths.finetuned_metrics(key), summarize(results))
    write_csv(paths.finetune_curves(key), curves, ("seed", *EPOCH_COLUMNS))
