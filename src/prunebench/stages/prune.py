"""The prune stage: one method on every seed's base model, at every operating point.

A point is a target: `ratio` of the `budget` (MACs, nonzero parameters or units) removed; the
method's schedule (`prunebench.stages.schedules`) yields each seed's pruned model per point.
Every pruned model is assessed on the test split twice (`assess_point`): as pruned, and after its
BatchNorm statistics are re-estimated on `recalibrate` training batches (pruning changes what
each BatchNorm sees). The recalibrated model is saved; fine-tuning starts from it. A seed is one
job (`prune_seed`), run wherever the executor puts it; the stage writes what the jobs return.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from typing import Any

import torch

from prunebench import paths, resume, runtime
from prunebench.errors import Unsupported
from prunebench.files import read_csv, save_bytes, write_csv, write_json
from prunebench.layouts import ROW_KEYS, phase_columns
from prunebench.params import Params, plain
from prunebench.progress import say
from prunebench.pruning import inspection, methods
from prunebench.pruning.budget import SelectionCost
from prunebench.pruning.methods import Context, Method
from prunebench.pruning.units import units_of
from prunebench.report.results import flatten, save_predictions
from prunebench.stages.schedules import Found, Outcome, Schedule, SeedRun, schedule_for
from prunebench.stages.workbench import Shared, Workbench
from prunebench.training import measure, modelfile
from prunebench.training.loops import evaluate, prepare_model, recalibrate, seed_everything
from prunebench.training.models import prunable_layers

WEIGHT_BINS = 120  # of the weight histograms
Weights = dict[str, torch.Tensor]


@dataclass
class SeedRecord:
    """What pruning one seed at every point found (its model files in `found.files`); `merge`
    joins the seeds' records in seed order."""

    rows: list[dict[str, Any]] = field(default_factory=list)  # one per point: results/pruned/<m>.csv
    predictions: dict[str, torch.Tensor] = field(default_factory=dict)  # "<point>/<seed>/<phase>" → correct
    layers: list[dict[str, Any]] = field(default_factory=list)  # per point and layer: cost
    weights: list[dict[str, Any]] = field(default_factory=list)  # histograms (first seed)
    found: Found = field(default_factory=Found)  # the schedule's tables, iterations, retraining

    @classmethod
    def merge(cls, records: list[SeedRecord]) -> SeedRecord:
        merged = cls()
        for record in records:
            merged.rows += record.rows
            merged.predictions |= record.predictions
            merged.layers += record.layers
            merged.weights += record.weights
            merged.found.extend(record.found)
        return merged


@dataclass
class Pruning(Shared):
    """What every seed's job of one method shares."""

    method: Method
    schedule: Schedule
    labels: dict[str, str]  # the first columns of every row: method, implementation, unit, schedule, budget
    shared_cost: SelectionCost | None  # the cost of a selection, where one serves every seed
    sensitivity: list[dict[str, Any]]


@dataclass(frozen=True)
class Job:
    seed: int
    base: bytes = field(repr=False)  # the seed's base model file

    def __str__(self) -> str:  # its name in the resume cache
        return str(self.seed)


def prune_seed(context: Pruning, job: Job) -> SeedRecord:
    """Every point of one seed: the schedule's outcomes, each assessed (`assess_point`)."""
    bench, seed, shape = context.bench, job.seed, context.bench.splits.input_shape
    seed_everything(seed)
    model, _, spec = modelfile.load(job.base)
    model = prepare_model(model, bench.device)
    base_weights = {name: layer.weight.detach().cpu().clone() for name, layer in prunable_layers(model).items()}
    _, base_layers = measure.costs(model, shape)
    cost = context.shared_cost or units_of(context.method).cost(model, shape)
    calibration = bench.train_batches(seed)
    ctx = Context(
        batches=lambda: iter(calibration),
        device=bench.device,
        generator=torch.Generator().manual_seed(seed),
        input_shape=shape,
        sensitivity=[row for row in context.sensitivity if row["seed"] == seed],
    )
    record = SeedRecord()
    budget = bench.params.budget
    outcomes = context.schedule.points(
        SeedRun(bench, model, spec, seed, ctx, lambda selection: cost.kept(selection, budget), record.found)
    )
    if seed == bench.params.seeds[0]:
        record.weights += _histogram("base", base_weights.values(), base_weights.values())
    for outcome in outcomes:
        assess_point(bench, context.labels, outcome, seed, Base(spec, base_weights, base_layers), record)
    return record


def run(params: Params, key: str) -> None:
    """Prune every seed's base model with the method `methods.<key>` at every point and write the
    stage's outputs."""
    bench = Workbench.open(params, runtime.setup(params))
    entry = params.methods[key]
    method = methods.create(entry)
    units = units_of(method)
    shape = bench.splits.input_shape
    files = {seed: paths.base_model(seed) for seed in params.seeds}
    first = modelfile.load(files[params.seeds[0]])[0]
    probe = Context(
        batches=lambda: iter(()), device=torch.device("cpu"), generator=torch.Generator(), input_shape=shape
    )
    if why := inspection.refusal(method, first, probe):
        return refuse(key, why)
    shared_cost = units.cost(first, shape) if units.per_architecture else None
    schedule = schedule_for(params, entry, method, shared_cost)
    labels = {
        "method": key,
        "implementation": entry.method,
        "unit": method.unit,
        "schedule": methods.schedule(entry),
        "budget": params.budget,
    }
    context = Pruning(bench, method, schedule, labels, shared_cost, read_csv(paths.SENSITIVITY))
    finished = resume.Jobs(
        paths.finished_jobs(f"prune/{key}"),
        resume.fingerprint(
            entry.as_dict(),
            plain(params.schedule),
            params.points,
            params.budget,
            params.recalibrate,
            plain(params.data),
            params.device,
            files=[paths.SENSITIVITY, paths.SPLIT, paths.code_manifest("prune")],
        ),
        inputs=lambda job: job.base,
    )
    jobs = [Job(seed, file.read_bytes()) for seed, file in files.items()]
    try:
        found = SeedRecord.merge(bench.run(prune_seed, context, jobs, f"prune {key}", finished))
    except Unsupported as refused:  # found while scoring: the method refuses, the others run
        return refuse(key, str(refused))
    for path, data in found.found.files.items():
        save_bytes(path, data)
    write_csv(paths.pruned_results(key), found.rows)
    save_predictions(paths.pruned_predictions(key), found.predictions)
    write_csv(paths.method_layers(key), found.layers)
    write_csv(paths.method_weights(key), found.weights)
    for name, rows in found.found.tables.items():
        write_csv(paths.method_table(key, name), rows)
    schedule.write(found.found)


def refuse(key: str, why: str) -> None:
    """The outputs of a method that refuses the model: why, where its models and tables would be,
    and results without rows; nothing it wrote before it found out stays."""
    say(f"{key}: refused: {why}")
    for folder in (paths.pruned_models(key), paths.method_plots(key)):
        shutil.rmtree(folder, ignore_errors=True)
        write_json(paths.refusal(folder), {"method": key, "reason": why})
    write_csv(paths.pruned_results(key), [], ROW_KEYS)
    save_predictions(paths.pruned_predictions(key), {})


@dataclass
class Base:
    """One seed's base model as the points are compared with it: its description, its prunable
    weights and its per-layer costs."""

    spec: dict[str, Any]
    weights: Weights
    layers: dict[str, dict[str, float]]


def assess_point(
    bench: Workbench, labels: dict[str, str], outcome: Outcome, seed: int, base: Base, record: SeedRecord
) -> None:
    """Test one pruned model as pruned and BatchNorm-recalibrated, save the recalibrated model,
    and add its row (after `labels`: the method's key, implementation, unit, schedule, budget),
    predictions, per-layer costs and (first seed) weight histogram to `record`."""
    params, choice, ratio, key = bench.params, outcome.choice, outcome.ratio, labels["method"]
    metric = bench.splits.task.metric
    model = prepare_model(outcome.pruned.model, bench.device)
    before = evaluate(model, bench.test, bench.device, per_example=True)
    recalibrate(model, bench.train_batches(seed), params.recalibrate)
    after = evaluate(model, bench.test, bench.device, per_example=True)
    totals, layer_costs = measure.costs(model, bench.splits.input_shape)
    record.found.files[paths.pruned_model(key, ratio, seed)] = modelfile.dumps(model, base.spec, outcome.pruned.masks)
    point = paths.point_name(ratio)
    record.predictions |= {
        f"{point}/{seed}/pruned": before["outcome"],
        f"{point}/{seed}/recalibrated": after["outcome"],
    }
    record.rows.append(labels | _row(outcome, seed, before, after, totals))
    record.layers += _layer_rows(ratio, seed, base, layer_costs)
    if seed == params.seeds[0]:
        pruned = [layer.weight.detach().cpu() for layer in prunable_layers(model).values()]
        record.weights += _histogram(point, base.weights.values(), pruned)
    say(
        f"{key} {params.budget} {point} seed {seed}: kept {choice.kept:.3f} of the {params.budget}"
        f"{'' if choice.reached else ' (target out of reach)'}, test {metric} {before[metric]:.4f}"
        f" pruned, {after[metric]:.4f} recalibrated"
    )


def _row(outcome: Outcome, seed: int, before: dict, after: dict, totals: dict[str, float]) -> dict[str, Any]:
    """A point's row of results/pruned/<m>.csv, after the labels: how it met the target, what the
    method spent, the accuracies and losses pruned and recalibrated, its costs, its diagnostics."""
    choice = outcome.choice
    return {
        "ratio": outcome.ratio,
        "seed": seed,
        "reached": choice.reached,
        "fraction": choice.fraction,
        "kept": choice.kept,
        "iteration": outcome.iteration,
        **outcome.spent.columns(),
        **phase_columns("pruned", before),
        **phase_columns("recalibrated", after),
        **totals,
        **{f"diagnostic.{k}": v for k, v in flatten(outcome.pruned.metrics).items()},
    }


def _layer_rows(ratio: float, seed: int, base: Base, costs: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """Per prunable layer of the base model: its MACs and nonzero weights before and after."""
    return [
        {
            "ratio": ratio,
            "seed": seed,
            "layer": name,
            "base_macs": base.layers[name]["macs"],
            "base_nonzeros": base.layers[name]["nonzeros"],
            "pruned_macs": costs[name]["macs"],
            "pruned_nonzeros": costs[name]["nonzeros"],
            "removed": 1 - costs[name]["nonzeros"] / weight.numel(),
        }
        for name, weight in base.weights.items()
    ]


def _histogram(model: str, base: Any, weights: Any) -> list[dict[str, Any]]:
    """Counts of the nonzero `weights` in WEIGHT_BINS bins spanning the base model's weights."""
    low, high = min(float(w.min()) for w in base), max(float(w.max()) for w in base)
    values = torch.cat([w.flatten() for w in weights]).float()
    counts, edges = torch.histogram(values[values != 0], bins=WEIGHT_BINS, range=(low, high))
    return [
        {"model": model, "left": float(e), "right": float(r), "count": int(c)}
        for e, r, c in zip(edges[:-1], edges[1:], counts, strict=True)
    ]
