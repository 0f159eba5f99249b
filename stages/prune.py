"""Stage prune@<method>: prune every seed's base model with one method, following `schedule`."""

import sys

import pandas as pd
import torch
from tqdm import tqdm

from prunebench import measure, methods, report, surgery
from prunebench.io import write_csv, write_json
from prunebench.methods import Context
from prunebench.models import prunable_layers
from prunebench.params import load
from prunebench.pipeline import SENSITIVITY, Workbench, base_model, pruned_model, summarize
from prunebench.pruning import layer_sparsity, mask_keeper, prune_step, step_ratios
from prunebench.train import fit, prepare_model, seed_everything

key = sys.argv[1]
params = load()
bench = Workbench.open(params)
entry = params["methods"][key]
method = methods.create(key, entry)
schedule = params["schedule"]
sensitivity = pd.read_csv(SENSITIVITY)
results, layer_ratios, diagnostics, tables = {}, {}, {}, {}
for seed in tqdm(params["seeds"], desc=f"prune {key}", unit="seed"):
    seed_everything(seed)
    model, _, spec = surgery.load(base_model(seed))
    model = prepare_model(model, bench.device)
    base_params = measure.count_params(model)
    base_layers = {name: layer.weight.detach().cpu().clone() for name, layer in prunable_layers(model).items()}
    first = seed == params["seeds"][0]  # the per-layer plots show the first seed
    base_costs = measure.per_layer(model, bench.splits.input_shape) if first else None
    train_loader = bench.train_loader(seed)
    ctx = Context(batches=lambda: iter(train_loader), device=bench.device,
                  generator=torch.Generator().manual_seed(seed), input_shape=bench.splits.input_shape,
                  sensitivity=sensitivity[sensitivity["seed"] == seed].to_dict("records"))
    masks, done = {}, 0.0
    targets = step_ratios(params["ratio"], schedule["iterations"])
    for step, target in enumerate(targets, start=1):
        model, masks = prune_step(model, method, done, target, ctx, masks, bench.splits.input_shape)
        model, done = prepare_model(model, bench.device), target
        if step < len(targets):
            fit(model, train_loader, bench.val, schedule["retrain"], bench.device,
                after_step=mask_keeper(model, masks), desc=f"retrain step {step}")
    results[seed] = bench.assess(model)
    results[seed]["sparsity"] = 1 - results[seed]["nonzeros"] / base_params
    layer_ratios[str(seed)] = layer_sparsity(base_layers, prunable_layers(model))
    if method.metrics:
        diagnostics[str(seed)] = method.metrics
    for name, rows in method.tables.items():
        tables.setdefault(name, []).extend({"seed": seed, **row} for row in rows)
    if first:
        report.plot_weights(base_layers, prunable_layers(model), key, f"plots/methods/{key}/weights.png")
        after = measure.per_layer(model, bench.splits.input_shape)
        rows = [{"layer": n, **{f"base_{k}": v for k, v in base_costs[n].items()},
                 **{f"pruned_{k}": v for k, v in after[n].items()}} for n in base_layers]
        write_csv(f"plots/methods/{key}/layers.csv", rows)
        report.plot_layers(rows, f"plots/methods/{key}/flops_comparison.png")
    surgery.save(pruned_model(key, seed), model, spec, masks)
    tqdm.write(f"{key} seed {seed}: test accuracy {results[seed]['accuracy']:.4f}, "
               f"sparsity {results[seed]['sparsity']:.3f}")
for name, rows in tables.items():
    write_csv(f"plots/methods/{key}/{name}.csv", rows)
    report.TABLE_PLOTS[name](rows, f"plots/methods/{key}/{name}.png")
write_json(f"metrics/pruned/{key}.json",
           summarize(results, method=methods.implementation(key, entry), unit=method.unit, ratio=params["ratio"],
                     layer_ratios=layer_ratios, diagnostics=diagnostics))
