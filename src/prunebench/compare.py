"""The compare stage: mean ± std per method and point, the winners of each budget with their
ties, the report and its figures (every method's too), the CSVs behind the `dvc plots`
definitions, the comparison metrics for `dvc exp show`, and the MLflow runs. Every input is read
once, here, and handed on (MLflow logs the frames read for the report)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from prunebench import figures, method_plots, paths, report, tracking, workers
from prunebench.io import read_csv, read_json, save_with, write_json, write_text
from prunebench.layouts import ITERATION_COLUMNS
from prunebench.results import load_predictions

CURVE_COLUMNS = ("method", "ratio", "seed", "reduction", "macs_reduction", "speedup", "pruned_accuracy",
                 "recalibrated_accuracy", "finetuned_accuracy", "finetuned_loss")  # plots/compare/curve.csv


def compare(params: dict[str, Any]) -> str:
    """Write the comparison; returns the winner-per-budget table (what `make run` prints)."""
    keys = list(params["methods"])
    results = pd.read_csv(paths.RESULTS)
    predictions = load_predictions(paths.PREDICTIONS)
    summary = report.summarize(results)
    winners = pd.concat([report.standings(results, predictions, phase, params["stats"]["confidence"],
                                          params["stats"]["resamples"]) for phase in report.WINNER_PHASES])
    _csv(paths.SUMMARY, summary)
    _csv(paths.WINNERS, winners)
    middle = sorted(results["ratio"].unique())[len(results["ratio"].unique()) // 2]  # the point shown in detail
    finetune_curves = pd.concat([pd.read_csv(paths.finetune_curves(key)).assign(method=key) for key in keys])
    train_curves = pd.read_csv(paths.TRAIN_CURVES)
    env = read_json(paths.BASE_METRICS)["environment"]  # where the base models were trained
    layers = pd.concat([pd.read_csv(paths.method_layers(key)).assign(method=key) for key in keys])
    retained = [key for key in keys if paths.method_iterations(key).exists()]
    iterations = pd.concat([pd.read_csv(paths.method_iterations(key)).assign(method=key) for key in retained]
                           or [pd.DataFrame(columns=["method", "seed", *ITERATION_COLUMNS, "deployed"])])

    # the CSVs behind the dvc.yaml plot definitions
    out = paths.COMPARE_PLOTS
    mean_reduction = results.groupby(["method", "ratio"])["reduction"].transform("mean")
    _csv(out / "curve.csv", results[list(CURVE_COLUMNS)].assign(reduction=mean_reduction))
    _csv(out / "layers.csv", layers[layers["ratio"] == middle].groupby(["method", "layer"], sort=False)
         [["pruned_macs", "pruned_nonzeros"]].mean().reset_index())
    _csv(out / "finetune_curves.csv", finetune_curves[finetune_curves["ratio"] == middle]
         .groupby(["method", "epoch"], sort=False)[["val_accuracy", "val_loss"]].mean().reset_index())
    _csv(out / "iterations.csv", iterations[["method", "seed", "iteration", "units_kept", "val_accuracy", "val_loss"]])

    base_accuracy = results.drop_duplicates("seed")["base_accuracy"].mean()
    figure_jobs = {
        "tradeoff": lambda: [figures.plot_tradeoff(summary, params["budget"], base_accuracy, out / "tradeoff.png")],
        "speedup": lambda: [figures.plot_speedup(summary, out / "speedup.png")],
        "finetune": lambda: [figures.plot_curves(finetune_curves, "method", out / "finetune_curves.png", "fine-tuning",
                                                 panels="ratio")],
        "train": lambda: [figures.plot_curves(train_curves, "seed", out / "train_curves.png", "base training")],
        "layers": lambda: [figures.plot_layers(layers, out / "layers.png")],
        "weights": lambda: [figures.plot_weights(pd.concat([pd.read_csv(paths.method_weights(key)).assign(method=key)
                                                            for key in keys]), out / "weights.png")],
        "mlflow": lambda: tracking.log_benchmark(params, results, winners, train_curves, finetune_curves, iterations,
                                                  env),
    } | {key: (lambda key=key: _method_figures(key, iterations[iterations["method"] == key]
                                               if key in retained else None)) for key in keys}
    # MLflow's bookkeeping and the figures take about as long: two processes do them side by side
    done = dict(zip(figure_jobs, workers.run(lambda name: figure_jobs[name](), list(figure_jobs),
                                             workers.count(params["workers"]))))
    pictures = [p for name, made in done.items() if name != "mlflow" for p in made]
    pictures[4:4] = [paths.SENSITIVITY_UNSTRUCTURED, paths.SENSITIVITY_STRUCTURED]
    diagnostics = {key: values for key, rows in results.groupby("method", sort=False)
                   if (values := report.diagnostics_means(rows))}
    chosen = iterations[iterations["deployed"].astype(bool)] if len(iterations) else iterations
    deployed = chosen[["method", "seed", "iteration", "val_accuracy", "params", "units_kept"]]
    layer_ratios = layers[layers["ratio"] == middle].groupby(["method", "layer"], sort=False)["removed"].mean() \
        .reset_index().assign(ratio=middle)
    write_text(paths.REPORT, report.markdown_report(params, results, summary, winners, pictures, layer_ratios,
                                                    diagnostics, deployed, env))
    metrics: dict[str, dict[str, dict[str, float]]] = {}  # method → point → what `dvc exp show` compares
    for r in summary.to_dict("records"):
        metrics.setdefault(r["method"], {})[f"{r['ratio']:g}"] = {
            "finetuned_accuracy": r["finetuned_accuracy_mean"],
            "recalibrated_accuracy": r["recalibrated_accuracy_mean"], "reduction": r["reduction_mean"]}
    write_json(paths.SUMMARY_METRICS, metrics)
    experiment, runs = done["mlflow"]
    tracking.log_files(runs[0], [paths.RESULTS, paths.SUMMARY, paths.WINNERS, paths.REPORT, *pictures])
    print(f"MLflow: the benchmark and {len(runs) - 1} point runs in {tracking.tracking_uri()}; "
          f"the training runs: {tracking.runs_page(experiment)} (make ui serves the local store)")
    return report.winner_table(winners, params["budget"])


def _method_figures(key: str, iterations: pd.DataFrame | None) -> list[Path]:
    """One method's own figures (its diagnostics, its retention schedule), from the tables its prune stage wrote."""
    source, out = paths.method_plots(key), paths.method_figures(key)
    pictures = [plot(read_csv(source / f"{name}.csv"), out / f"{name}.png")
                for name, plot in method_plots.TABLE_PLOTS.items() if (source / f"{name}.csv").exists()]
    if iterations is not None:
        plan = read_csv(source / "retention.csv")
        rows = iterations.to_dict("records")
        pictures += [method_plots.plot_retention(plan, out / "retention.png"),
                     method_plots.plot_retention_distribution(plan, out / "retention_distribution.png"),
                     method_plots.plot_iterations(rows, "accuracy", out / "accuracies.png"),
                     method_plots.plot_iterations(rows, "loss", out / "losses.png")]
    return pictures


def _csv(path: Path, frame: pd.DataFrame) -> None:
    save_with(path, lambda tmp: frame.to_csv(tmp, index=False))
