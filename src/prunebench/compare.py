"""The compare stage: mean ± std per method, the report and its figures, the CSVs behind the
`dvc plots` definitions, the comparison metrics for `dvc exp show`, and the MLflow runs. Every
input is read once, here, and handed on (MLflow logs the frames read for the report)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from prunebench import figures, paths, report, tracking
from prunebench.io import read_json, save_with, write_json, write_text

SUMMARY_COLUMNS = ("pruned_accuracy", "finetuned_accuracy", "pruned_sparsity", "macs_reduction", "params_reduction",
                   "speedup")  # per method in metrics/summary.json


def compare(params: dict[str, Any]) -> str:
    """Write the comparison; returns the Markdown table (what `make run` prints)."""
    keys = list(params["methods"])
    results = pd.read_csv(paths.RESULTS)
    summary = report.summarize(results)
    _csv(paths.SUMMARY, summary)
    pruned = {key: read_json(paths.pruned_metrics(key)) for key in keys}
    finetune_curves = pd.concat([pd.read_csv(paths.finetune_curves(key)).assign(method=key) for key in keys])
    train_curves = pd.read_csv(paths.TRAIN_CURVES)
    layers = pd.concat([pd.read_csv(paths.method_layers(key)).assign(method=key) for key in keys])
    retained = [key for key in keys if pruned[key]["schedule"] == "retention"]
    iterations = pd.concat([pd.read_csv(paths.method_iterations(key)).assign(method=key) for key in retained]
                           or [pd.DataFrame(columns=["method", "seed", "iteration", "units_kept", "val_accuracy",
                                                     "val_loss", "params"])])

    # the CSVs behind the dvc.yaml plot definitions
    out = paths.COMPARE_PLOTS
    _csv(out / "accuracy.csv", pd.concat([summary[["method"]].assign(phase=phase,
                                                                     accuracy=summary[f"{phase}_accuracy_mean"])
                                          for phase in ("pruned", "finetuned")]))
    _csv(out / "cost.csv", summary[["method"]].assign(**{m: summary[f"finetuned_{m}_mean"] for m in
                                                         ("macs", "macs_sparse", "params", "nonzeros", "latency_ms")}))
    _csv(out / "finetune_curves.csv", finetune_curves.groupby(["method", "epoch"], sort=False)
         [["val_accuracy", "val_loss"]].mean().reset_index())
    _csv(out / "layers.csv", layers[["method", "layer", "pruned_macs", "pruned_nonzeros"]])
    _csv(out / "iterations.csv", iterations[["method", "seed", "iteration", "units_kept", "val_accuracy", "val_loss"]])

    pngs = [
        figures.plot_accuracy(summary, out / "accuracy.png"),
        figures.plot_tradeoff(summary, out / "tradeoff.png"),
        figures.plot_cost(summary, out / "cost.png"),
        figures.plot_curves(finetune_curves, "method", out / "finetune_curves.png", "fine-tuning"),
        figures.plot_curves(train_curves, "seed", out / "train_curves.png", "base training (per seed)"),
    ]
    pictures = pngs + [paths.SENSITIVITY_UNSTRUCTURED, paths.SENSITIVITY_STRUCTURED]
    pictures += [png for key in keys for png in sorted(paths.method_plots(key).glob("*.png"))]
    layer_ratios = {key: p["layer_ratios"] for key, p in pruned.items()}
    diagnostics = {key: report.diagnostics_means(p["diagnostics"]) for key, p in pruned.items() if p["diagnostics"]}
    deployed = {key: pruned[key]["deployed"] for key in retained}
    write_text(paths.REPORT, report.markdown_report(summary, params, pictures, layer_ratios, diagnostics, deployed))
    write_json(paths.SUMMARY_METRICS, {
        r["method"]: {k: r[f"{k}_mean"] for k in SUMMARY_COLUMNS} | diagnostics.get(r["method"], {})
        for r in summary.to_dict("records")})
    run = tracking.log_benchmark(params, results, summary, [paths.RESULTS, paths.SUMMARY, paths.REPORT, *pictures],
                                 train_curves, finetune_curves, iterations, deployed)
    print(f"MLflow: run {run} in {tracking.tracking_uri()}")
    return report.table(summary)


def _csv(path: Path, frame: pd.DataFrame) -> None:
    save_with(path, lambda tmp: frame.to_csv(tmp, index=False))
