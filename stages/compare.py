"""Stage compare: mean ± std per method, the report and its plots, the CSVs behind
`dvc plots`, and the MLflow runs."""

from pathlib import Path

import pandas as pd

from prunebench import report, tracking
from prunebench.io import read_json, save_with, write_json, write_text
from prunebench.params import load
from prunebench.pipeline import RESULTS

params = load()
results = pd.read_csv(RESULTS)
summary = report.summarize(results)
save_with("results/summary.csv", lambda tmp: summary.to_csv(tmp, index=False))

# CSVs for the dvc.yaml plot definitions
accuracy = pd.concat([summary[["method"]].assign(phase=phase, accuracy=summary[f"{phase}_accuracy_mean"])
                      for phase in ("pruned", "finetuned")])
save_with("plots/compare/accuracy.csv", lambda tmp: accuracy.to_csv(tmp, index=False))
cost = summary[["method"]].assign(**{m: summary[f"finetuned_{m}_mean"]
                                     for m in ("macs", "macs_sparse", "params", "nonzeros", "latency_ms")})
save_with("plots/compare/cost.csv", lambda tmp: cost.to_csv(tmp, index=False))
curves = pd.concat([pd.read_csv(f"plots/finetune/{key}.csv").assign(method=key) for key in params["methods"]])
mean_curves = curves.groupby(["method", "epoch"], sort=False)[["val_accuracy", "val_loss"]].mean().reset_index()
save_with("plots/compare/finetune_curves.csv", lambda tmp: mean_curves.to_csv(tmp, index=False))
train_curves = pd.read_csv("plots/train/curves.csv")
layers = pd.concat([pd.read_csv(f"plots/methods/{key}/layers.csv").assign(method=key) for key in params["methods"]])
save_with("plots/compare/layers.csv", lambda tmp: layers[["method", "layer", "pruned_macs", "pruned_nonzeros"]]
          .to_csv(tmp, index=False))
pruned = {key: read_json(f"metrics/pruned/{key}.json") for key in params["methods"]}
retained = [key for key, p in pruned.items() if p["schedule"] == "retention"]
iterations = pd.concat([pd.read_csv(f"plots/methods/{key}/iterations.csv").assign(method=key) for key in retained]
                       or [pd.DataFrame(columns=["seed", "iteration", "units_kept", "val_accuracy", "val_loss"])])
save_with("plots/compare/iterations.csv", lambda tmp: iterations[["method", "seed", "iteration", "units_kept",
                                                                  "val_accuracy", "val_loss"]].to_csv(tmp, index=False))

pngs = [
    report.plot_accuracy(summary, "plots/compare/accuracy.png"),
    report.plot_tradeoff(summary, "plots/compare/tradeoff.png"),
    report.plot_cost(summary, "plots/compare/cost.png"),
    report.plot_curves(curves, "method", "plots/compare/finetune_curves.png", "fine-tuning"),
    report.plot_curves(train_curves, "seed", "plots/compare/train_curves.png", "base training (per seed)"),
]
figures = pngs + [Path("plots/sensitivity/unstructured.png"), Path("plots/sensitivity/structured.png")]
figures += [png for key in params["methods"] for png in sorted(Path(f"plots/methods/{key}").glob("*.png"))]
layer_ratios = {key: p["layer_ratios"] for key, p in pruned.items()}
diagnostics = {key: report.diagnostics_means(p["diagnostics"]) for key, p in pruned.items() if p["diagnostics"]}
deployed = {key: pruned[key]["deployed"] for key in retained}
write_text("results/report.md", report.markdown_report(summary, params, figures, layer_ratios, diagnostics, deployed))
write_json("metrics/summary.json", {
    r["method"]: {k.removesuffix("_mean"): r[k] for k in ("pruned_accuracy_mean", "finetuned_accuracy_mean",
                                                          "pruned_sparsity_mean", "macs_reduction_mean",
                                                          "params_reduction_mean", "speedup_mean")}
    | diagnostics.get(r["method"], {})
    for r in summary.to_dict("records")})
print(report.table(summary))
run = tracking.log_benchmark(params, results, summary, [RESULTS, "results/summary.csv", "results/report.md", *figures],
                             deployed)
print(f"MLflow: run {run} in {tracking.tracking_uri()}")
