"""Stage prune@<method>: prune every seed's base model with one method, following `schedule`:
"steps" (schedule.iterations equal steps) or "retention" (the geometric retention schedule,
with a deployed model chosen among its iterations).

The retention schedule keeps a checkpoint per iteration in checkpoints/<method>/<seed>/, a
resume cache outside DVC's outputs (DVC would delete them before a re-run, and persistent
outputs would take every prune stage out of DVC's run-cache): a killed run resumes there."""

import dataclasses
import shutil
import sys
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from prunebench import measure, method_plots, methods, retention, surgery
from prunebench.io import save_with, write_csv, write_json
from prunebench.methods import Context
from prunebench.models import prunable_layers
from prunebench.params import load
from prunebench.pipeline import SENSITIVITY, Workbench, base_model, pruned_model, summarize
from prunebench.pruning import layer_sparsity, mask_keeper, prune_step, prune_to_counts, step_ratios
from prunebench.train import evaluate, fit, prepare_model, seed_everything

key = sys.argv[1]
params = load()
bench = Workbench.open(params)
entry = params["methods"][key]
method = methods.create(key, entry)
how = methods.schedule(key, entry)
schedule = params["schedule"]
shape = bench.splits.input_shape
out = Path(f"plots/methods/{key}")
checkpoints = Path(f"checkpoints/{key}")


def by_steps(model: nn.Module, ctx: Context, seed: int) -> tuple[nn.Module, dict]:
    """schedule.iterations steps, each keeping the same fraction, retraining between them."""
    masks, done = {}, 0.0
    targets = step_ratios(params["ratio"], schedule["iterations"])
    for step, target in enumerate(targets, start=1):
        model, masks = prune_step(model, method, done, target, ctx, masks, shape)
        model, done = prepare_model(model, bench.device), target
        if step < len(targets):
            fit(model, bench.train_loader(seed), bench.val, schedule["retrain"], bench.device,
                after_step=mask_keeper(model, masks), desc=f"retrain step {step}")
    return model, masks


def by_retention(model: nn.Module, spec: dict, ctx: Context, seed: int,
                 plan: list[dict]) -> tuple[nn.Module, list[dict], retention.Checkpoints]:
    """The retention schedule from checkpoint to checkpoint: prune to the counts, retrain with
    early stopping on the validation split, assess on the validation split."""
    made_from = retention.fingerprint(methods.implementation(key, entry), method.config, schedule["retention"]["q"],
                                      schedule["retrain"], params["data"], params["device"], seed,
                                      files=[base_model(seed), Path("stages/prune.py"),
                                             *Path("src/prunebench").rglob("*.py")])
    store = retention.Checkpoints(checkpoints / str(seed), made_from)
    own_seed = lambda t: seed * 1000 + t  # noqa: E731 (each iteration seeded alone: a resumed run is identical)

    def prune(model: nn.Module, t: int, counts: dict[str, int]) -> nn.Module:
        step = dataclasses.replace(ctx, generator=torch.Generator().manual_seed(own_seed(t)))
        return prepare_model(prune_to_counts(prepare_model(model, bench.device), method, counts, step, shape),
                             bench.device)

    def retrain(model: nn.Module, t: int) -> list[dict]:
        seed_everything(own_seed(t))
        return fit(model, bench.train_loader(own_seed(t)), bench.val, schedule["retrain"], bench.device,
                   desc=f"iteration {t}")

    def assess(model: nn.Module) -> dict[str, float]:
        val = evaluate(prepare_model(model, bench.device), bench.val, bench.device)
        return {"val_accuracy": val["accuracy"], "val_loss": val["loss"], "params": measure.count_params(model),
                "macs": sum(measure.layer_macs(model, shape).values())}

    model, results = retention.iterate(model, spec, plan, store, prune, retrain, assess)
    return prepare_model(model, bench.device), results, store


if how == "retention":  # the schedule is written before pruning starts
    plan = retention.table(retention.sizes(surgery.load(base_model(params["seeds"][0]))[0], shape),
                           **{k: schedule["retention"][k] for k in ("q", "max_iterations")}, ratio=params["ratio"])
    write_csv(out / "retention.csv", plan)
    method_plots.plot_retention(plan, out / "retention.png")
    method_plots.plot_retention_distribution(plan, out / "retention_distribution.png")

sensitivity = pd.read_csv(SENSITIVITY)
results, layer_ratios, diagnostics, tables, deployed, iterations, histories = {}, {}, {}, {}, {}, [], []
for seed in tqdm(params["seeds"], desc=f"prune {key}", unit="seed"):
    seed_everything(seed)
    model, _, spec = surgery.load(base_model(seed))
    model = prepare_model(model, bench.device)
    base_params = measure.count_params(model)
    base_layers = {name: layer.weight.detach().cpu().clone() for name, layer in prunable_layers(model).items()}
    first = seed == params["seeds"][0]  # the per-layer plots show the first seed
    base_costs = measure.per_layer(model, shape) if first else None
    train_loader = bench.train_loader(seed)
    ctx = Context(batches=lambda: iter(train_loader), device=bench.device,
                  generator=torch.Generator().manual_seed(seed), input_shape=shape,
                  sensitivity=sensitivity[sensitivity["seed"] == seed].to_dict("records"))
    extra = {}
    if how == "steps":
        model, masks = by_steps(model, ctx, seed)
    else:
        model, rows, store = by_retention(model, spec, ctx, seed, plan)
        masks, choice = {}, retention.choose(rows, schedule["retention"]["tolerance"])
        deployed_file = pruned_model(key, seed).parent / "deployed" / f"{seed}.pt"
        save_with(deployed_file, lambda tmp: shutil.copyfile(store.model(choice["iteration"]), tmp))
        deployed[str(seed)] = choice | {"model": deployed_file.as_posix()}
        histories += [{"seed": seed, "iteration": t, **epoch}
                      for t in range(1, len(rows)) for epoch in store.history(t)]
        iterations += [{"seed": seed, **row, "deployed": row["iteration"] == choice["iteration"]} for row in rows]
        extra = {"iterations": rows[-1]["iteration"], "deployed_iteration": choice["iteration"],
                 "deployed_val_accuracy": choice["val_accuracy"], "deployed_params": choice["params"]}
        tqdm.write(f"{key} seed {seed}: deployed iteration {choice['iteration']} ({choice['rule']})")
    results[seed] = bench.assess(model)
    results[seed]["sparsity"] = 1 - results[seed]["nonzeros"] / base_params
    layer_ratios[str(seed)] = layer_sparsity(base_layers, prunable_layers(model))
    if method.metrics or extra:
        diagnostics[str(seed)] = method.metrics | extra
    for name, rows in method.tables.items():
        tables.setdefault(name, []).extend({"seed": seed, **row} for row in rows)
    if first:
        method_plots.plot_weights(base_layers, prunable_layers(model), key, out / "weights.png")
        after = measure.per_layer(model, shape)
        rows = [{"layer": n, **{f"base_{k}": v for k, v in base_costs[n].items()},
                 **{f"pruned_{k}": v for k, v in after[n].items()}} for n in base_layers]
        write_csv(out / "layers.csv", rows)
        method_plots.plot_layers(rows, out / "flops_comparison.png")
    surgery.save(pruned_model(key, seed), model, spec, masks)
    tqdm.write(f"{key} seed {seed}: test accuracy {results[seed]['accuracy']:.4f}, "
               f"sparsity {results[seed]['sparsity']:.3f}")
for name, rows in tables.items():
    write_csv(out / f"{name}.csv", rows)
    method_plots.TABLE_PLOTS[name](rows, out / f"{name}.png")
if iterations:
    write_csv(out / "iterations.csv", iterations)
    write_csv(out / "retrain_history.csv", histories)  # every retraining epoch of every iteration
    method_plots.plot_iterations(iterations, "accuracy", out / "accuracies.png")
    method_plots.plot_iterations(iterations, "loss", out / "losses.png")
write_json(f"metrics/pruned/{key}.json",
           summarize(results, method=methods.implementation(key, entry), unit=method.unit, ratio=params["ratio"],
                     schedule=how, layer_ratios=layer_ratios, diagnostics=diagnostics, deployed=deployed))
