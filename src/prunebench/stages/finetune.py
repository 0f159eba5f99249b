"""The finetune stage: every pruned model of one method, every point and seed, with the same
budget; masks stay applied."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from prunebench import paths, resume, runtime
from prunebench.files import read_json, save_bytes, write_csv, write_json
from prunebench.layouts import EPOCH_COLUMNS, ROW_KEYS, phase_columns
from prunebench.params import Params, plain
from prunebench.pruning.selection import mask_keeper
from prunebench.report.results import save_predictions
from prunebench.stages.workbench import Shared, Workbench
from prunebench.training import measure, modelfile
from prunebench.training.loops import evaluate, fit, prepare_model, seed_everything


@dataclass
class Tuning(Shared):
    """What every fine-tuning of one method shares."""

    key: str


@dataclass(frozen=True)
class Job:
    ratio: float
    seed: int
    pruned: bytes = dataclasses.field(repr=False)  # the pruned model file's bytes

    def __str__(self) -> str:  # its name in the resume cache
        return f"{paths.point_name(self.ratio)}/{self.seed}"


@dataclass
class Tuned:
    row: dict[str, Any]
    outcome: torch.Tensor  # per test example (`loops.evaluate`)
    curve: list[dict[str, Any]]
    model: bytes


def finetune(context: Tuning, job: Job) -> Tuned:
    bench, key, ratio, seed = context.bench, context.key, job.ratio, job.seed
    seed_everything(seed)
    model, masks, spec = modelfile.load(job.pruned)
    model = prepare_model(model, bench.device)
    history = fit(
        model,
        bench.train_batches(seed),
        bench.val,
        bench.params.finetune,
        bench.device,
        after_step=mask_keeper(model, masks),
        desc=f"finetune {key} {paths.point_name(ratio)} seed {seed}",
    )
    test = evaluate(model, bench.test, bench.device, per_example=True)
    row = {
        "method": key,
        "ratio": ratio,
        "seed": seed,
        **phase_columns("finetuned", test),
        "finetuned_nonzeros": measure.count_nonzero(model, bench.splits.input_shape),
        "epochs": len(history),
    }
    curve = [{"ratio": ratio, "seed": seed, **record} for record in history]
    return Tuned(row, test["outcome"], curve, modelfile.dumps(model, spec, masks))


def run(params: Params, key: str) -> None:
    refused = paths.refusal(paths.pruned_models(key))
    if refused.exists():  # the method refused the model: nothing to fine-tune, and the report says why
        write_json(paths.refusal(paths.finetuned_models(key)), read_json(refused))
        write_csv(paths.finetuned_results(key), [], ROW_KEYS)
        save_predictions(paths.finetuned_predictions(key), {})
        write_csv(paths.finetune_curves(key), [], ("ratio", "seed", *EPOCH_COLUMNS))
        return
    bench = Workbench.open(params, runtime.setup(params))
    files = {(ratio, seed): paths.pruned_model(key, ratio, seed) for ratio in params.points for seed in params.seeds}
    jobs = [Job(ratio, seed, file.read_bytes()) for (ratio, seed), file in files.items()]
    finished = resume.Jobs(
        paths.finished_jobs(f"finetune/{key}"),
        resume.fingerprint(
            plain(params.finetune),
            plain(params.data),
            params.device,
            files=[paths.SPLIT, paths.code_manifest("finetune")],
        ),
        inputs=lambda job: job.pruned,  # a point added later re-runs only its own fine-tunings
    )
    done: list[Tuned] = bench.run(finetune, Tuning(bench, key), jobs, f"finetune {key}", finished)
    for job, tuned in zip(jobs, done):
        save_bytes(paths.finetuned_model(key, job.ratio, job.seed), tuned.model)
    write_csv(paths.finetuned_results(key), [tuned.row for tuned in done])
    save_predictions(
        paths.finetuned_predictions(key),
        {f"{paths.point_name(t.row['ratio'])}/{t.row['seed']}/finetuned": t.outcome for t in done},
    )
    write_csv(
        paths.finetune_curves(key),
        [record for tuned in done for record in tuned.curve],
        ("ratio", "seed", *EPOCH_COLUMNS),
    )
