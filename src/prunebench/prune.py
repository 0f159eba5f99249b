"""The prune stage: one method on every seed's base model, at every operating point.

A point is a target: `ratio` of the `budget` (MACs, nonzero parameters or units) removed. On
the step schedule the method scores each seed's base model once, and each point searches its
own fraction of the method's units on that ranking (`budget.search`; with several steps, each
step re-scores after retraining). On the retention schedule one run of iterations per seed
serves every point: each point takes the first iteration that reaches it, and a deployed model
is chosen among the iterations by a stated rule.

Every pruned model is assessed on the test split twice: as pruned, and after its BatchNorm
statistics are re-estimated on `recalibrate` training batches (pruning changes what each
BatchNorm sees). The recalibrated model is saved; fine-tuning starts from it.

The retention schedule keeps a checkpoint per iteration under checkpoints/<method>/<seed>/, a
resume cache (`prunebench.resume`): a killed run resumes there.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunebench import measure, methods, paths, resume, retention, surgery
from prunebench.budget import ChannelCost, Choice, WeightCost
from prunebench.io import read_csv, save_with, write_csv
from prunebench.layouts import counts
from prunebench.methods import Context, Method
from prunebench.models import prunable_layers
from prunebench.pipeline import Workbench, points
from prunebench.progress import say
from prunebench.pruning import Masks, Pruned, mask_keeper, prune_in_steps, prune_to_counts
from prunebench.results import flatten, save_predictions
from prunebench.train import evaluate, fit, prepare_model, recalibrate, seed_everything

WEIGHT_BINS = 120  # of the weight histograms


def prune_method(key: str, params: dict[str, Any]) -> None:
    """Prune every seed's base model with the method `methods.<key>` at every point and write the
    stage's outputs."""
    bench = Workbench.open(params)
    entry = params["methods"][key]
    method = methods.create(key, entry)
    how = methods.schedule(key, entry)
    shape, budget, seeds = bench.splits.input_shape, params["budget"], params["seeds"]
    sensitivity = read_csv(paths.SENSITIVITY)
    channel_cost = ChannelCost(surgery.load(paths.base_model(seeds[0]))[0], shape) if method.unit == "channel" else None
    plan = None
    if how == "retention":  # the schedule is written before pruning starts
        retained = params["schedule"]["retention"]
        plan = retention.table(channel_cost.sizes, retained["q"], retained["max_iterations"],
                               lambda counts: channel_cost(counts).kept(channel_cost.base, budget),
                               min(1 - ratio for ratio in points(params)))
        write_csv(paths.method_plots(key) / "retention.csv", plan)

    def prune_seed(seed: int) -> dict[str, Any]:
        """Every point of one seed: the rows, predictions and tables (the models are saved)."""
        seed_everything(seed)
        model, _, spec = surgery.load(paths.base_model(seed))
        model = prepare_model(model, bench.device)
        base_weights = {name: layer.weight.detach().cpu().clone() for name, layer in prunable_layers(model).items()}
        _, base_layers = measure.costs(model, shape)
        cost = channel_cost or WeightCost(model, shape)
        calibration = bench.train_batches(seed)
        ctx = Context(batches=lambda: iter(calibration), device=bench.device,
                      generator=torch.Generator().manual_seed(seed), input_shape=shape,
                      sensitivity=[row for row in sensitivity if row["seed"] == seed])
        found: dict[str, Any] = {"rows": [], "predictions": {}, "layers": [], "weights": [], "tables": {},
                                 "iterations": [], "histories": []}
        if how == "steps":
            outcomes = _by_steps(model, method, ctx, bench, seed, lambda s: cost(s).kept(cost.base, budget),
                                 found["tables"])
        else:
            made_from = resume.fingerprint(methods.implementation(key, entry), dataclasses.asdict(method.knobs),
                                              params["schedule"]["retention"]["q"], params["schedule"]["retrain"],
                                              params["data"], params["device"], budget, seed,
                                              files=[paths.base_model(seed), paths.code_manifest("prune")])
            store = retention.Checkpoints(paths.retention_checkpoints(key, seed), made_from)
            results = _iterate(model, spec, method, ctx, bench, seed, plan, store, found["tables"])
            outcomes = _retention_points(plan, store, points(params))
            choice = retention.choose(results, params["schedule"]["retention"]["tolerance"])
            deployed = store.model(choice["iteration"])
            save_with(paths.deployed_model(key, seed), lambda tmp: shutil.copyfile(deployed, tmp))
            found["histories"] = [{"seed": seed, "iteration": t, **epoch} for t in range(1, len(results))
                                  for epoch in store.history(t)]
            found["iterations"] = [{"seed": seed, **r, "deployed": r["iteration"] == choice["iteration"]}
                                   for r in results]
            say(f"{key} seed {seed}: deployed iteration {choice['iteration']} ({choice['rule']})")
        if seed == seeds[0]:
            found["weights"] += _histogram("base", base_weights.values(), base_weights.values())
        for ratio, pruned, choice, iteration in outcomes:
            pruned_model = prepare_model(pruned.model, bench.device)
            before = evaluate(pruned_model, bench.test, bench.device, per_example=True)
            recalibrate(pruned_model, bench.train_batches(seed), params["recalibrate"])
            after = evaluate(pruned_model, bench.test, bench.device, per_example=True)
            totals, layer_costs = measure.costs(pruned_model, shape)
            surgery.save(paths.pruned_model(key, ratio, seed), pruned_model, spec, pruned.masks)
            point = paths.point_name(ratio)
            found["predictions"] |= {f"{point}/{seed}/pruned": before["correct"],
                                     f"{point}/{seed}/recalibrated": after["correct"]}
            found["rows"].append({
                "method": key, "implementation": methods.implementation(key, entry), "unit": method.unit,
                "schedule": how, "budget": budget, "ratio": ratio, "seed": seed, "reached": choice.reached,
                "fraction": choice.fraction, "kept": choice.kept, "iteration": iteration,
                "pruned_accuracy": before["accuracy"], "pruned_loss": before["loss"],
                "recalibrated_accuracy": after["accuracy"], "recalibrated_loss": after["loss"], **totals,
                **{f"diagnostic.{k}": v for k, v in flatten(pruned.metrics).items()}})
            found["layers"] += [{"ratio": ratio, "seed": seed, "layer": name, "base_macs": base_layers[name]["macs"],
                                 "base_nonzeros": base_layers[name]["nonzeros"],
                                 "pruned_macs": layer_costs[name]["macs"],
                                 "pruned_nonzeros": layer_costs[name]["nonzeros"],
                                 "removed": 1 - layer_costs[name]["nonzeros"] / weight.numel()}
                                for name, weight in base_weights.items()]
            if seed == seeds[0]:
                found["weights"] += _histogram(point, base_weights.values(), [
                    layer.weight.detach().cpu() for layer in prunable_layers(pruned_model).values()])
            say(f"{key} {budget} {point} seed {seed}: kept {choice.kept:.3f} of the {budget}"
                f"{'' if choice.reached else ' (target out of reach)'}, test accuracy {before['accuracy']:.4f}"
                f" pruned, {after['accuracy']:.4f} recalibrated")
        return found

    done = bench.run(prune_seed, seeds, f"prune {key}")
    rows = [row for found in done for row in found["rows"]]
    latencies: dict[str, float] = {}  # latency depends on the architecture alone: each timed once, here

    def latency(path: Path) -> float:
        model = prepare_model(surgery.load(path)[0], bench.device)
        architecture = json.dumps(surgery.architecture(model), sort_keys=True)
        if architecture not in latencies:
            latencies[architecture] = bench.latency(model)
        return latencies[architecture]

    for row in rows:  # the base model beside its pruned models, so that the speed-up compares like with like
        row |= {"latency_ms": latency(paths.pruned_model(key, row["ratio"], row["seed"])),
                "base_latency_ms": latency(paths.base_model(row["seed"]))}
    write_csv(paths.pruned_results(key), rows)
    save_predictions(paths.pruned_predictions(key), {k: v for found in done for k, v in found["predictions"].items()})
    write_csv(paths.method_layers(key), [row for found in done for row in found["layers"]])
    write_csv(paths.method_weights(key), [row for found in done for row in found["weights"]])
    for name in dict.fromkeys(name for found in done for name in found["tables"]):
        write_csv(paths.method_plots(key) / f"{name}.csv",
                  [row for found in done for row in found["tables"].get(name, [])])
    if how == "retention":
        write_csv(paths.method_iterations(key), [row for found in done for row in found["iterations"]])
        write_csv(paths.method_plots(key) / "retrain_history.csv",  # every retraining epoch
                  [row for found in done for row in found["histories"]])


Outcome = tuple[float, Pruned, Choice, int | None]  # ratio, the pruned model, its choice, the retention iteration


def _by_steps(model: nn.Module, method: Method, ctx: Context, bench: Workbench, seed: int, kept,
              tables: dict[str, list[dict]]) -> Iterator[Outcome]:
    """Every point on the step schedule (schedule.iterations steps, retraining between them),
    one at a time. One-shot, the method scores the model once for every point."""
    iterations = bench.params["schedule"]["iterations"]

    def retrain(model: nn.Module, masks: Masks, step: int) -> nn.Module:
        model = prepare_model(model, bench.device)
        fit(model, bench.train_batches(seed), bench.val, bench.params["schedule"]["retrain"], bench.device,
            after_step=mask_keeper(model, masks), desc=f"seed {seed} retrain step {step}",
            lr_key="schedule.retrain.lr")
        return model

    scored = None
    if iterations == 1:
        model.eval()
        scored = method.score(model, prunable_layers(model), ctx)
        _collect(tables, scored.tables, seed=seed)
    for ratio in points(bench.params):
        pruned, choice = prune_in_steps(copy.deepcopy(model), method, ctx, kept, 1 - ratio, iterations, retrain,
                                        scored)
        if scored is None:
            _collect(tables, pruned.tables, seed=seed, ratio=ratio)
        yield ratio, pruned, choice, None


def _iterate(model: nn.Module, spec: dict, method: Method, ctx: Context, bench: Workbench, seed: int,
             plan: list[dict], store: retention.Checkpoints, tables: dict[str, list[dict]]) -> list[dict[str, Any]]:
    """The retention schedule from checkpoint to checkpoint, once for every point: prune to the
    counts, retrain with early stopping on the validation split, assess on the validation split.
    Each iteration is seeded on its own, so a resumed run is identical to an unbroken one.
    Returns one result per iteration."""
    def own_seed(t: int) -> int:
        return seed * 1000 + t

    def prune(model: nn.Module, t: int, counts: dict[str, int]) -> nn.Module:
        step = dataclasses.replace(ctx, generator=torch.Generator().manual_seed(own_seed(t)))
        pruned = prune_to_counts(prepare_model(model, bench.device), method, counts, step)
        _collect(tables, pruned.tables, seed=seed, iteration=t)
        return prepare_model(pruned.model, bench.device)

    def retrain(model: nn.Module, t: int) -> list[dict]:
        seed_everything(own_seed(t))
        return fit(model, bench.train_batches(own_seed(t)), bench.val, bench.params["schedule"]["retrain"],
                   bench.device, desc=f"seed {seed} iteration {t}", lr_key="schedule.retrain.lr")

    def assess(model: nn.Module) -> dict[str, float]:
        val = evaluate(prepare_model(model, bench.device), bench.val, bench.device)
        return {"val_accuracy": val["accuracy"], "val_loss": val["loss"], "params": measure.count_params(model),
                "macs": sum(measure.layer_macs(model, bench.splits.input_shape).values())}

    return retention.iterate(model, spec, plan, store, prune, retrain, assess)[1]


def _retention_points(plan: list[dict], store: retention.Checkpoints, ratios: list[float]) -> Iterator[Outcome]:
    """Each point's model: the first iteration that reaches it (else the last, out of reach)."""
    for ratio in ratios:
        row = retention.first_reaching(plan, 1 - ratio)
        reached = row["budget_kept"] <= 1 - ratio
        choice = Choice(row["removed_fraction"], counts(row), row["budget_kept"], reached)
        yield ratio, Pruned(surgery.load(store.model(row["iteration"]))[0]), choice, row["iteration"]


def _collect(tables: dict[str, list[dict]], found: dict[str, list[dict]], **where: Any) -> None:
    """Add a scoring's tables, each row tagged with where it came from (seed, point, iteration)."""
    for name, rows in found.items():
        tables.setdefault(name, []).extend(where | row for row in rows)


def _histogram(model: str, base: list[torch.Tensor], weights: list[torch.Tensor]) -> list[dict[str, Any]]:
    """Counts of the nonzero `weights` in WEIGHT_BINS bins spanning the base model's weights."""
    low, high = min(float(w.min()) for w in base), max(float(w.max()) for w in base)
    values = torch.cat([w.flatten() for w in weights]).float()
    counts, edges = torch.histogram(values[values != 0], bins=WEIGHT_BINS, range=(low, high))
    return [{"model": model, "left": float(e), "right": float(r), "count": int(c)}
            for e, r, c in zip(edges[:-1], edges[1:], counts)]
