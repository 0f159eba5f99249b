"""The prune stage: one method on every seed's base model, following its schedule: "steps"
(`pruning.prune_in_steps`) or "retention" (`retention.iterate`, with a deployed model chosen
among the iterations).

The retention schedule keeps a checkpoint per iteration under checkpoints/<method>/<seed>/, a
resume cache outside DVC's outputs (DVC would delete them before a re-run, and persistent
outputs would take every prune stage out of DVC's run-cache): a killed run resumes there. A
checkpoint is reused only if it was made from the same inputs: the params it depends on, the
base model, and the stage's code (`code.closure`, the files dvc.yaml lists as its deps).
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from prunebench import measure, method_plots, methods, paths, retention, surgery
from prunebench.io import read_csv, save_with, write_csv, write_json
from prunebench.methods import Context, Method
from prunebench.models import prunable_layers
from prunebench.pipeline import Workbench, summarize
from prunebench.pruning import Masks, Pruned, layer_sparsity, mask_keeper, prune_in_steps, prune_to_counts
from prunebench.train import evaluate, fit, prepare_model, seed_everything


def prune_method(key: str, params: dict[str, Any], code: list[Path]) -> None:
    """Prune every seed's base model with the method `methods.<key>` and write the stage's outputs;
    `code` is the stage's source files (they invalidate the retention checkpoints)."""
    bench = Workbench.open(params)
    entry = params["methods"][key]
    method = methods.create(key, entry)
    how = methods.schedule(key, entry)
    out = paths.method_plots(key)
    plan = None
    if how == "retention":  # the schedule is written before pruning starts
        retained = params["schedule"]["retention"]
        base = surgery.load(paths.base_model(params["seeds"][0]))[0]
        plan = retention.table(retention.sizes(base, bench.splits.input_shape), retained["q"],
                               retained["max_iterations"], params["ratio"])
        write_csv(out / "retention.csv", plan)
        method_plots.plot_retention(plan, out / "retention.png")
        method_plots.plot_retention_distribution(plan, out / "retention_distribution.png")
    sensitivity = read_csv(paths.SENSITIVITY)
    results, layer_ratios, diagnostics, tables, deployed, iterations, histories = {}, {}, {}, {}, {}, [], []
    for seed in tqdm(params["seeds"], desc=f"prune {key}", unit="seed"):
        seed_everything(seed)
        model, _, spec = surgery.load(paths.base_model(seed))
        model = prepare_model(model, bench.device)
        base_params = measure.count_params(model)
        base_layers = {name: layer.weight.detach().cpu().clone() for name, layer in prunable_layers(model).items()}
        first = seed == params["seeds"][0]  # the per-layer plots show the first seed
        base_costs = measure.per_layer(model, bench.splits.input_shape) if first else None
        train_loader = bench.train_loader(seed)
        ctx = Context(batches=lambda: iter(train_loader), device=bench.device,
                      generator=torch.Generator().manual_seed(seed), input_shape=bench.splits.input_shape,
                      sensitivity=[row for row in sensitivity if row["seed"] == seed])
        extra = {}
        if how == "steps":
            pruned = _by_steps(model, method, ctx, bench, seed)
        else:
            made_from = retention.fingerprint(methods.implementation(key, entry), dataclasses.asdict(method.knobs),
                                              params["schedule"]["retention"]["q"], params["schedule"]["retrain"],
                                              params["data"], params["device"], seed,
                                              files=[paths.base_model(seed), *code])
            store = retention.Checkpoints(paths.retention_checkpoints(key, seed), made_from)
            pruned, rows = _by_retention(model, spec, method, ctx, bench, seed, plan, store)
            choice = retention.choose(rows, params["schedule"]["retention"]["tolerance"])
            target = paths.deployed_model(key, seed)
            save_with(target, lambda tmp: shutil.copyfile(store.model(choice["iteration"]), tmp))
            deployed[str(seed)] = choice | {"model": target.as_posix()}
            histories += [{"seed": seed, "iteration": t, **epoch}
                          for t in range(1, len(rows)) for epoch in store.history(t)]
            iterations += [{"seed": seed, **row, "deployed": row["iteration"] == choice["iteration"]} for row in rows]
            extra = {"iterations": rows[-1]["iteration"], "deployed_iteration": choice["iteration"],
                     "deployed_val_accuracy": choice["val_accuracy"], "deployed_params": choice["params"]}
            tqdm.write(f"{key} seed {seed}: deployed iteration {choice['iteration']} ({choice['rule']})")
        model = pruned.model
        results[seed] = bench.assess(model)
        results[seed]["sparsity"] = 1 - results[seed]["nonzeros"] / base_params
        layer_ratios[str(seed)] = layer_sparsity(base_layers, prunable_layers(model))
        if pruned.metrics or extra:
            diagnostics[str(seed)] = pruned.metrics | extra
        for name, rows in pruned.tables.items():
            tables.setdefault(name, []).extend({"seed": seed, **row} for row in rows)
        if first:
            method_plots.plot_weights(base_layers, prunable_layers(model), key, out / "weights.png")
            rows = measure.layer_rows(base_costs, measure.per_layer(model, bench.splits.input_shape), list(base_layers))
            write_csv(paths.method_layers(key), rows)
            method_plots.plot_layers(rows, out / "flops_comparison.png")
        surgery.save(paths.pruned_model(key, seed), model, spec, pruned.masks)
        tqdm.write(f"{key} seed {seed}: test accuracy {results[seed]['accuracy']:.4f}, "
                   f"sparsity {results[seed]['sparsity']:.3f}")
    for name, rows in tables.items():
        write_csv(out / f"{name}.csv", rows)
        method_plots.TABLE_PLOTS[name](rows, out / f"{name}.png")
    if iterations:
        write_csv(paths.method_iterations(key), iterations)
        write_csv(out / "retrain_history.csv", histories)  # every retraining epoch of every iteration
        method_plots.plot_iterations(iterations, "accuracy", out / "accuracies.png")
        method_plots.plot_iterations(iterations, "loss", out / "losses.png")
    write_json(paths.pruned_metrics(key),
               summarize(results, method=methods.implementation(key, entry), unit=method.unit, ratio=params["ratio"],
                         schedule=how, layer_ratios=layer_ratios, diagnostics=diagnostics, deployed=deployed))


def _by_steps(model: nn.Module, method: Method, ctx: Context, bench: Workbench, seed: int) -> Pruned:
    """schedule.iterations steps to `ratio`, retraining (schedule.retrain) between them."""
    schedule = bench.params["schedule"]

    def retrain(model: nn.Module, masks: Masks, step: int) -> nn.Module:
        model = prepare_model(model, bench.device)
        fit(model, bench.train_loader(seed), bench.val, schedule["retrain"], bench.device,
            after_step=mask_keeper(model, masks), desc=f"retrain step {step}")
        return model

    pruned = prune_in_steps(model, method, bench.params["ratio"], schedule["iterations"], ctx, retrain)
    pruned.model = prepare_model(pruned.model, bench.device)
    return pruned


def _by_retention(model: nn.Module, spec: dict, method: Method, ctx: Context, bench: Workbench, seed: int,
                  plan: list[dict], store: retention.Checkpoints) -> tuple[Pruned, list[dict]]:
    """The retention schedule from checkpoint to checkpoint: prune to the counts, retrain with
    early stopping on the validation split, assess on the validation split. Each iteration is
    seeded on its own, so a resumed run is identical to an unbroken one."""
    last = Pruned(model)

    def own_seed(t: int) -> int:
        return seed * 1000 + t

    def prune(model: nn.Module, t: int, counts: dict[str, int]) -> nn.Module:
        nonlocal last
        step = dataclasses.replace(ctx, generator=torch.Generator().manual_seed(own_seed(t)))
        last = prune_to_counts(prepare_model(model, bench.device), method, counts, step)
        return prepare_model(last.model, bench.device)

    def retrain(model: nn.Module, t: int) -> list[dict]:
        seed_everything(own_seed(t))
        return fit(model, bench.train_loader(own_seed(t)), bench.val, bench.params["schedule"]["retrain"],
                   bench.device, desc=f"iteration {t}")

    def assess(model: nn.Module) -> dict[str, float]:
        val = evaluate(prepare_model(model, bench.device), bench.val, bench.device)
        return {"val_accuracy": val["accuracy"], "val_loss": val["loss"], "params": measure.count_params(model),
                "macs": sum(measure.layer_macs(model, bench.splits.input_shape).values())}

    model, rows = retention.iterate(model, spec, plan, store, prune, retrain, assess)
    return Pruned(prepare_model(model, bench.device), {}, last.metrics, last.tables), rows
