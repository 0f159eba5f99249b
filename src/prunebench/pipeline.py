"""What the stages share (the device, the data and its batches, the operating points, assessing
a model) and the two stages that train: base training and fine-tuning."""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn

from prunebench import data, environment, measure, models, paths, pretrained, resume, surgery, workers
from prunebench.batches import Batches, FileBatches, batches
from prunebench.io import read_json, write_csv, write_json
from prunebench.layouts import EPOCH_COLUMNS
from prunebench.progress import bar, say
from prunebench.pruning import mask_keeper
from prunebench.results import save_predictions
from prunebench.train import evaluate, fit, pick_device, prepare_model, seed_everything

Job = TypeVar("Job")


def points(params: dict[str, Any]) -> list[float]:
    """The operating points: `ratio`, one number or a list of them."""
    ratio = params["ratio"]
    return list(ratio) if isinstance(ratio, list) else [ratio]


@dataclass
class Workbench:
    """The device, the data (in-memory parts held on the device once) and the evaluation
    batches, set up once per stage."""

    params: dict[str, Any]
    device: torch.device
    splits: data.Splits
    val: Batches | FileBatches
    test: Batches | FileBatches
    workers: int  # processes that run the stage's jobs side by side (`prunebench.workers`)

    @classmethod
    def open(cls, params: dict[str, Any]) -> Workbench:
        if not paths.SPLIT.exists():
            raise FileNotFoundError(f"{paths.SPLIT} is missing: run the data stage first (dvc repro data)")
        workers.one_thread()
        device = pick_device(params["device"])
        splits = data.load(read_json(paths.SPLIT), params["data"])
        if splits.in_memory:
            splits = dataclasses.replace(splits, train=splits.train.to(device), val=splits.val.to(device),
                                         test=splits.test.to(device))
        cfg = params["data"]
        return cls(params, device, splits, batches(splits.val, splits, cfg, device),
                   batches(splits.test, splits, cfg, device), workers.count(params["workers"], device.type))

    def train_batches(self, seed: int) -> Batches | FileBatches:
        """Shuffled, augmented training batches whose order follows `seed` (and the epoch)."""
        return batches(self.splits.train, self.splits, self.params["data"], self.device, train=True, seed=seed)

    def run(self, work: Callable[[Job], Any], jobs: list[Job], desc: str) -> list[Any]:
        """`work(job)` for every job, `workers` at a time, with a progress bar over the jobs."""
        return list(bar(workers.run(work, jobs, self.workers), total=len(jobs), desc=desc, unit="job"))

    def latency(self, model: nn.Module) -> float:
        """Measured by the stage process itself, once its workers are done: no other job competes."""
        return measure.latency(model, self.splits.input_shape, self.params["measure"], self.device)


def train_base(params: dict[str, Any]) -> None:
    """The train stage: one base model per seed, its test metrics and training curves."""
    bench = Workbench.open(params)
    s = bench.splits
    spec = models.spec(params["model"], s.in_channels, s.num_classes, s.image_size)

    def train(seed: int) -> tuple[dict, list[dict]]:
        seed_everything(seed)
        model = prepare_model(pretrained.initial(spec), bench.device)
        store = resume.Store(paths.training_checkpoints(seed), resume.fingerprint(
            params["model"], params["train"], params["data"], params["device"], seed,
            files=[paths.SPLIT, paths.code_manifest("train")]))
        history = fit(model, bench.train_batches(seed), bench.val, params["train"], bench.device,
                      desc=f"train seed {seed}", checkpoint=store.directory / "state.pt", lr_key="train.lr")
        surgery.save(paths.base_model(seed), model, spec)
        test = evaluate(model, bench.test, bench.device)
        say(f"seed {seed}: test accuracy {test['accuracy']:.4f}")
        return {"seed": seed, **test, **measure.costs(model, s.input_shape)[0]}, history

    done = bench.run(train, params["seeds"], "base models")
    latency = bench.latency(prepare_model(surgery.load(paths.base_model(params["seeds"][0]))[0], bench.device))
    rows = [row | {"latency_ms": latency} for row, _ in done]  # one architecture: timed once
    write_csv(paths.TRAIN_CURVES, [{"seed": row["seed"], **record} for row, history in done for record in history],
              ("seed", *EPOCH_COLUMNS))
    write_csv(paths.BASE_RESULTS, rows)
    write_json(paths.BASE_METRICS, {"model": params["model"]["name"],
                                    **{k: statistics.fmean(r[k] for r in rows) for k in rows[0] if k != "seed"},
                                    "environment": environment.describe(bench.device)})


def finetune_method(key: str, params: dict[str, Any]) -> None:
    """The finetune stage: every pruned model of one method, every point and seed, with the same
    budget; masks stay applied."""
    bench = Workbench.open(params)

    def finetune(job: tuple[float, int]) -> tuple[dict, torch.Tensor, list[dict]]:
        ratio, seed = job
        seed_everything(seed)
        model, masks, spec = surgery.load(paths.pruned_model(key, ratio, seed))
        model = prepare_model(model, bench.device)
        store = resume.Store(paths.finetune_checkpoints(key, ratio, seed), resume.fingerprint(
            params["finetune"], params["data"], params["device"], seed,
            files=[paths.pruned_model(key, ratio, seed), paths.SPLIT, paths.code_manifest("finetune")]))
        history = fit(model, bench.train_batches(seed), bench.val, params["finetune"], bench.device,
                      after_step=mask_keeper(model, masks),
                      desc=f"finetune {key} {paths.point_name(ratio)} seed {seed}",
                      checkpoint=store.directory / "state.pt", lr_key="finetune.lr")
        test = evaluate(model, bench.test, bench.device, per_example=True)
        surgery.save(paths.finetuned_model(key, ratio, seed), model, spec, masks)
        row = {"method": key, "ratio": ratio, "seed": seed, "finetuned_accuracy": test["accuracy"],
               "finetuned_loss": test["loss"], "finetuned_nonzeros": measure.count_nonzero(model),
               "epochs": len(history)}
        return row, test["correct"], [{"ratio": ratio, "seed": seed, **record} for record in history]

    done = bench.run(finetune, [(ratio, seed) for ratio in points(params) for seed in params["seeds"]],
                     f"finetune {key}")
    write_csv(paths.finetuned_results(key), [row for row, _, _ in done])
    save_predictions(paths.finetuned_predictions(key),
                     {f"{paths.point_name(row['ratio'])}/{row['seed']}/finetuned": correct for row, correct, _ in done})
    write_csv(paths.finetune_curves(key), [record for _, _, curve in done for record in curve],
              ("ratio", "seed", *EPOCH_COLUMNS))
