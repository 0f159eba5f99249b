"""The compare stage, in four steps: read every input once (`Inputs`); write the tables (mean ±
std per method and point, the winners of each budget with their ties, the CSVs behind the `dvc
plots` definitions, the metrics for `dvc exp show`); draw the figures, in the report's order,
while the MLflow runs are logged beside them; write the report. MLflow logs the frames read for
the report, so it shows exactly what DVC produced."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from prunebench import paths, runtime, workers
from prunebench.files import read_csv, read_json, save_with, write_json, write_text
from prunebench.layouts import FIDELITY_TABLE, ITERATION_COLUMNS
from prunebench.params import Params
from prunebench.progress import say
from prunebench.report import figures, markdown, method_figures, palette, plot_tables, tracking
from prunebench.report.palette import Look
from prunebench.report.results import load_predictions
from prunebench.task import Task, of_columns

CURVE_COLUMNS = (
    "method",
    "ratio",
    "seed",
    "reduction",
    "macs_reduction",
    "speedup",
    "ort_speedup",
    "ort_b1_speedup",
    "pruned_{metric}",
    "recalibrated_{metric}",
    "finetuned_{metric}",
    "finetuned_loss",
)  # plots/compare/curve.csv, {metric} the task's (`prunebench.task`)


@dataclass
class Inputs:
    """What the stages before wrote, read once."""

    results: pd.DataFrame  # results/results.csv
    predictions: dict[str, Any]  # results/predictions.npz
    train_curves: pd.DataFrame
    finetune_curves: pd.DataFrame  # every method's, with a method column
    layers: pd.DataFrame  # per method, point, seed and layer
    iterations: pd.DataFrame  # the retention schedule's, every method on it
    retained: list[str]  # the methods on the retention schedule
    env: dict[str, Any]  # where the base models were trained
    keys: list[str]  # the methods with results, in the order of params.yaml
    refused: dict[str, str]  # the methods that refused the model, and why
    model_check: dict[str, Any]  # what the check stage found: frozen channel groups
    fidelity: pd.DataFrame  # the oracle's table of every criterion's fidelity and cost, with a method column

    @property
    def task(self) -> Task:
        return of_columns(self.results.columns)

    @property
    def middle(self) -> float:
        """The point shown in detail."""
        ratios = sorted(self.results["ratio"].unique())
        return float(ratios[len(ratios) // 2])

    def at_middle(self, frame: pd.DataFrame, by: list[str], columns: list[str]) -> pd.DataFrame:
        """The mean over seeds of `columns` at the middle point, per `by` (in order of appearance)."""
        return frame[frame["ratio"] == self.middle].groupby(by, sort=False)[columns].mean().reset_index()


@dataclass
class Tables:
    summary: pd.DataFrame  # mean ± std per method and point
    winners: pd.DataFrame  # per phase and point: every method that reached it, best first, tied or not
    looks: dict[str, Look]  # each method's colour, family, line style and marker in every figure
    recalibration: pd.DataFrame = field(
        default_factory=pd.DataFrame
    )  # where recalibration lowered a method's metric beyond the paired interval


def run(params: Params) -> None:
    setup = runtime.setup(params, uses_torch=False)
    inputs = read_inputs(list(params.methods))
    tables = write_tables(params, inputs)
    pictures, (experiment, runs) = draw_and_log(params, inputs, tables, setup.workers)
    write_report(params, inputs, tables, pictures)
    tracking.log_files(runs[0], [paths.RESULTS, paths.SUMMARY, paths.WINNERS, paths.REPORT, *pictures])
    print(
        f"MLflow: the benchmark and {len(runs) - 1} point runs in {tracking.tracking_uri()}; "
        f"the training runs: {tracking.runs_page(experiment)} (make ui serves the local store)"
    )
    print(markdown.winner_table(tables.winners, params.budget))
    for x in tables.recalibration.itertuples():
        say(f"warning: recalibration lowered {x.method} at ratio {x.ratio:g} beyond the paired interval (report.md)")


def read_inputs(methods: list[str]) -> Inputs:
    refusals = [paths.refusal(paths.method_plots(key)) for key in methods]
    refused = {key: read_json(path)["reason"] for key, path in zip(methods, refusals) if path.exists()}
    keys = [key for key in methods if key not in refused]
    retained = [key for key in keys if paths.method_iterations(key).exists()]
    return Inputs(
        results=pd.read_csv(paths.RESULTS),
        predictions=load_predictions(paths.PREDICTIONS),
        train_curves=pd.read_csv(paths.TRAIN_CURVES),
        finetune_curves=pd.concat([pd.read_csv(paths.finetune_curves(key)).assign(method=key) for key in keys]),
        layers=pd.concat([pd.read_csv(paths.method_layers(key)).assign(method=key) for key in keys]),
        iterations=pd.concat(
            [pd.read_csv(paths.method_iterations(key)).assign(method=key) for key in retained]
            or [pd.DataFrame(columns=["method", "seed", *ITERATION_COLUMNS, "deployed"])]
        ),
        retained=retained,
        env=read_json(paths.BASE_METRICS)["environment"],
        keys=keys,
        refused=refused,
        model_check=read_json(paths.MODEL_CHECK),
        fidelity=pd.concat(
            [
                pd.read_csv(paths.method_table(key, FIDELITY_TABLE)).assign(method=key)
                for key in keys
                if paths.method_table(key, FIDELITY_TABLE).exists()
            ]
            or [pd.DataFrame()]
        ),
    )


def write_tables(params: Params, inputs: Inputs) -> Tables:
    """The summary and the winners, the CSVs behind the dvc.yaml plot definitions, and the metrics."""
    results = inputs.results
    summary = markdown.summarize(results)
    winners = pd.concat(
        [
            markdown.standings(results, inputs.predictions, phase, params.stats.confidence, params.stats.resamples)
            for phase in markdown.WINNER_PHASES
        ]
    )
    _csv(paths.SUMMARY, summary)
    _csv(paths.WINNERS, winners)
    recalibration = (
        markdown.recalibration_losses(results, inputs.predictions, params.stats.confidence, params.stats.resamples)
        if inputs.model_check.get("batchnorm", True)
        else pd.DataFrame()
    )
    tables = Tables(summary, winners, palette.looks(results), recalibration)
    write_plot_tables(inputs, tables)
    metrics: dict[str, dict[str, dict[str, float]]] = {}  # method → point → what `dvc exp show` compares
    metric = inputs.task.metric
    for r in summary.to_dict("records"):
        metrics.setdefault(r["method"], {})[f"{r['ratio']:g}"] = {
            f"finetuned_{metric}": r[f"finetuned_{metric}_mean"],
            f"recalibrated_{metric}": r[f"recalibrated_{metric}_mean"],
            "reduction": r["reduction_mean"],
        }
    write_json(paths.SUMMARY_METRICS, metrics)
    return tables


def write_plot_tables(inputs: Inputs, tables: Tables) -> None:
    """The CSVs behind the dvc.yaml plot definitions, each row with its method's family, and the
    templates that colour by method, filled with this run's colours."""
    results, looks, out, task = inputs.results, tables.looks, paths.COMPARE_PLOTS, inputs.task
    by_point = results.groupby(["method", "ratio"])
    cost = results["cost.pruning_seconds"] + results["cost.retrain_seconds"]
    curve = results[[c.format(metric=task.metric) for c in CURVE_COLUMNS]].assign(
        reduction=by_point["reduction"].transform("mean"),
        cost_seconds=cost.groupby([results["method"], results["ratio"]]).transform("mean"),
    )
    _csv(out / "curve.csv", palette.columns(curve, looks))
    tradeoff = curve.assign(**{f"base_{task.metric}": results[f"base_{task.metric}"]})
    _csv(out / "tradeoff.csv", plot_tables.tradeoff_rows(tradeoff, tables.summary, tables.winners, looks, task))
    layers = inputs.at_middle(inputs.layers, ["method", "layer"], ["base_macs", "pruned_macs", "pruned_nonzeros"])
    _csv(
        out / "layers.csv", palette.columns(layers.assign(macs_kept=layers["pruned_macs"] / layers["base_macs"]), looks)
    )
    finetune = inputs.at_middle(inputs.finetune_curves, ["method", "epoch"], ["val_accuracy", "val_loss"])
    _csv(out / "finetune_curves.csv", palette.columns(finetune, looks))
    iterations = inputs.iterations[["method", "seed", "iteration", "units_kept", "val_accuracy", "val_loss"]]
    _csv(out / "iterations.csv", palette.columns(iterations, looks))
    _csv(out / "differences.csv", plot_tables.difference_rows(tables.winners, looks, task))
    palette.fill_templates(paths.PLOT_TEMPLATES, paths.COLOURED_TEMPLATES, looks, task.metric)


Draw = Callable[[], list[Path]]


def figure_list(params: Params, inputs: Inputs, tables: Tables) -> list[Draw]:
    """The report's figures in the order it shows them; each entry draws its files (or names
    the sensitivity stage's)."""
    out, keys, summary, looks, task = paths.COMPARE_PLOTS, inputs.keys, tables.summary, tables.looks, inputs.task
    base_value = inputs.results.drop_duplicates("seed")[f"base_{task.metric}"].mean()
    iterations = inputs.iterations

    def weights() -> list[Path]:
        frames = [pd.read_csv(paths.method_weights(key)).assign(method=key) for key in keys]
        return [figures.plot_weights(pd.concat(frames), out / "weights.png")]

    def curves(frame: pd.DataFrame, *args: Any, **kwargs: Any) -> list[Path]:
        """Training curves, where there were epochs (none with train.epochs or finetune.epochs 0)."""
        return [figures.plot_curves(frame, *args, **({"task": task} | kwargs))] if len(frame) else []

    def method(key: str) -> Draw:
        return lambda: _method_figures(key, iterations[iterations["method"] == key] if key in inputs.retained else None)

    return [
        lambda: [
            figures.plot_tradeoff(summary, tables.winners, looks, params.budget, base_value, out / "tradeoff.png", task)
        ],
        lambda: [figures.plot_differences(tables.winners, looks, params.budget, out / "differences.png", task)],
        lambda: [figures.plot_speedup(summary, looks, params.measure.latency_batch, out / "speedup.png")],
        lambda: curves(
            inputs.finetune_curves, "method", out / "finetune_curves.png", "fine-tuning", panels="ratio", looks=looks
        ),
        lambda: curves(inputs.train_curves, "seed", out / "train_curves.png", "base training"),
        lambda: [paths.SENSITIVITY_UNSTRUCTURED, paths.SENSITIVITY_STRUCTURED],  # drawn by the sensitivity stage
        lambda: [figures.plot_layers(inputs.layers, looks, inputs.middle, out / "layers.png")],
        weights,
        *[method(key) for key in keys],
    ]


def draw_and_log(params: Params, inputs: Inputs, tables: Tables, processes: int) -> tuple[list[Path], Any]:
    """The figures, in order, and the MLflow runs (the experiment's id and the run ids): MLflow's
    bookkeeping and the figures take about as long, so worker processes do them side by side."""
    jobs: list[Callable[[], Any]] = [
        lambda: tracking.log_benchmark(
            tracking.Benchmark(
                params,
                inputs.results,
                tables.winners,
                inputs.train_curves,
                inputs.finetune_curves,
                inputs.iterations,
                inputs.env,
            )
        ),
        *figure_list(params, inputs, tables),
    ]
    logged, *drawn = workers.run(lambda i: jobs[i](), list(range(len(jobs))), processes)  # closures, not pickled
    return [picture for made in drawn for picture in made], logged


def write_report(params: Params, inputs: Inputs, tables: Tables, pictures: list[Path]) -> None:
    results, iterations = inputs.results, inputs.iterations
    diagnostics = {
        key: values
        for key, rows in results.groupby("method", sort=False)
        if (values := markdown.diagnostics_means(rows))
    }
    chosen = iterations[iterations["deployed"].astype(bool)] if len(iterations) else iterations
    deployed = chosen[["method", "seed", "iteration", "val_accuracy", "val_loss", "params", "units_kept"]]
    layer_ratios = inputs.at_middle(inputs.layers, ["method", "layer"], ["removed"]).assign(ratio=inputs.middle)
    write_text(
        paths.REPORT,
        markdown.markdown_report(
            markdown.Report(
                params,
                results,
                tables.summary,
                tables.winners,
                pictures,
                layer_ratios,
                diagnostics,
                deployed,
                inputs.env,
                inputs.model_check,
                inputs.refused,
                inputs.fidelity,
                tables.recalibration,
            )
        ),
    )


def _method_figures(key: str, iterations: pd.DataFrame | None) -> list[Path]:
    """One method's own figures (its diagnostics, its retention schedule), from the tables its prune stage wrote."""
    out = paths.method_figures(key)
    pictures = [
        plot(read_csv(paths.method_table(key, name)), out / f"{name}.png")
        for name, plot in method_figures.TABLE_PLOTS.items()
        if paths.method_table(key, name).exists()
    ]
    if iterations is not None:
        plan = read_csv(paths.method_retention(key))
        rows = iterations.to_dict("records")
        pictures += [
            method_figures.plot_retention(plan, out / "retention.png"),
            method_figures.plot_retention_distribution(plan, out / "retention_distribution.png"),
            method_figures.plot_iterations(rows, "accuracy", out / "accuracies.png"),
            method_figures.plot_iterations(rows, "loss", out / "losses.png"),
        ]
    return pictures


def _csv(path: Path, frame: pd.DataFrame) -> None:
    save_with(path, lambda tmp: frame.to_csv(tmp, index=False))
