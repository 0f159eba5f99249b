"""The train stage: one base model per seed, its test metrics and training curves."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from prunebench import environment, paths, resume, runtime
from prunebench.files import save_bytes, write_csv, write_json
from prunebench.layouts import EPOCH_COLUMNS
from prunebench.params import Params, plain
from prunebench.progress import say
from prunebench.stages.workbench import Shared, Workbench
from prunebench.training import measure, modelfile, models, pretrained
from prunebench.training.loops import evaluate, fit, prepare_model, seed_everything


@dataclass
class Training(Shared):
    """What every seed's training shares."""

    spec: dict[str, Any]


@dataclass
class Trained:
    """One seed's base model (a model file's bytes), its test row and its training curve."""

    row: dict[str, Any]
    history: list[dict[str, Any]]
    model: bytes


def train(context: Training, seed: int) -> Trained:
    bench = context.bench
    seed_everything(seed)
    model = prepare_model(pretrained.initial(context.spec), bench.device)
    history = fit(
        model, bench.train_batches(seed), bench.val, bench.params.train, bench.device, desc=f"train seed {seed}"
    )
    test = evaluate(model, bench.test, bench.device)
    metric = bench.splits.task.metric
    say(f"seed {seed}: test {metric} {test[metric]:.4f}")
    row = {"seed": seed, **test, **measure.costs(model, bench.splits.input_shape)[0]}
    return Trained(row, history, modelfile.dumps(model, context.spec))


def run(params: Params) -> None:
    bench = Workbench.open(params, runtime.setup(params))
    spec = models.spec(plain(params.model), **bench.splits.factory_shape)
    finished = resume.Jobs(
        paths.finished_jobs("train"),
        resume.fingerprint(
            plain(params.model),
            plain(params.train),
            plain(params.data),
            params.device,
            files=[paths.SPLIT, paths.code_manifest("train")],
        ),
    )
    done: list[Trained] = bench.run(train, Training(bench, spec), params.seeds, "base models", finished)
    for seed, trained in zip(params.seeds, done):
        save_bytes(paths.base_model(seed), trained.model)
    rows = [trained.row for trained in done]
    write_csv(
        paths.TRAIN_CURVES,
        [{"seed": trained.row["seed"], **record} for trained in done for record in trained.history],
        ("seed", *EPOCH_COLUMNS),
    )
    write_csv(paths.BASE_RESULTS, rows)
    write_json(
        paths.BASE_METRICS,
        {
            "model": params.model.name,
            **{k: statistics.fmean(r[k] for r in rows) for k in rows[0] if k != "seed"},
            "environment": environment.describe(bench.device),
        },
    )
