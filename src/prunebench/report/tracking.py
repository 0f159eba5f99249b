"""MLflow logging, done once at the end of the pipeline from what the stages wrote.

So MLflow shows exactly what DVC produced (no half-logged runs from a failed stage), and only
one stage pays for importing mlflow. Per benchmark: a run with the report and every figure;
under it a run per base model, and a run per operating point (named with the DVC experiment
and the point), under which a run per method has its metrics (mean and std over seeds, and each
seed's, `seed<k>.`) and each seed's curves as steps.

The store is `sqlite:///<repo>/mlflow.db` (artifacts in `<repo>/mlartifacts`), resolved to the
main checkout even when DVC runs an experiment in a temporary copy (`--temp`, `--queue`): DVC
sets DVC_ROOT to the main repository there. MLFLOW_TRACKING_URI overrides the store.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from prunebench import paths, repository
from prunebench.layouts import PHASES
from prunebench.params import Params, plain
from prunebench.report.results import flatten
from prunebench.task import of_columns

# what a method run logs, mean and std over seeds (results/results.csv, an artifact, has every column)
COMPARED = (
    "pruned_accuracy",
    "recalibrated_accuracy",
    "finetuned_accuracy",
    "pruned_perplexity",
    "recalibrated_perplexity",
    "finetuned_perplexity",
    "pruned_loss",
    "recalibrated_loss",
    "finetuned_loss",
    "accuracy_change",
    "perplexity_change",
    "reduction",
    "macs_reduction",
    "params_reduction",
    "speedup",
    "latency_ms",
    "b1_speedup",
    "latency_b1_ms",
    "ort_speedup",
    "ort_ms",
    "ort_b1_speedup",
    "ort_b1_ms",
    "onnx_max_difference",
    "onnx_argmax_agreement",
    "macs_sparse",
    "nonzeros",
    "params",
    "sparsity",
    "kept",
    "fraction",
)


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repository.root() / 'mlflow.db'}"


def git_commit() -> str:
    if os.environ.get("DVC_EXP_BASELINE_REV"):
        return os.environ["DVC_EXP_BASELINE_REV"]
    done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def client() -> Any:
    """MLflow's client of the store, telemetry off (a benchmark should not phone home)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri())


class Logger:
    """Thin wrapper over MlflowClient: batch-logs params, metrics and step curves into one experiment."""

    def __init__(self, experiment: str):
        self.client = client()
        found = self.client.get_experiment_by_name(experiment)
        if found is not None:
            self.experiment_id = found.experiment_id
        else:
            local = (repository.root() / "mlartifacts" / experiment).as_uri()
            location = None if os.environ.get("MLFLOW_TRACKING_URI") else local
            self.experiment_id = self.client.create_experiment(experiment, artifact_location=location)
        # spares the UI's "which kind of experiment?" prompt; it still opens on its GenAI overview (`runs_page`)
        self.client.set_experiment_tag(self.experiment_id, "mlflow.experimentKind", "custom_model_development")
        self.tags = {"dvc_exp": os.environ.get("DVC_EXP_NAME", "workspace"), "git_commit": git_commit()}
        self.inputs: list = []  # the data split, logged as every run's dataset input

    def use_split(self, name: str, split_file: Path) -> None:
        """Log the data split (indices and normalisation, `data/prepared/split.json`) as every later
        run's dataset input: the data set's name, the split's digest, where it is, its sizes."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        split = split_file.read_text()
        sizes = {
            part: len(indices)
            for part, indices in json.loads(split).items()
            if part in ("train", "val", "test") and isinstance(indices, list)
        }
        dataset = Dataset(
            name, hashlib.sha256(split.encode()).hexdigest()[:16], "local", str(split_file), profile=json.dumps(sizes)
        )
        self.inputs = [DatasetInput(dataset, [InputTag("mlflow.data.context", "train / val / test split")])]

    def run(
        self,
        name: str,
        stage: str,
        params: dict[str, Any],
        metrics: dict[str, float],
        curves: Iterable[tuple[pd.DataFrame, str]] = (),
        artifacts: Iterable[Path] = (),
        parent: str | None = None,
        models: Path | None = None,
    ) -> str:
        """`curves`: (frame, its step column) pairs; every other column is logged as a metric per step.
        `artifacts`: files, each at its repository path; `models`: a folder of saved models, logged
        under "models/" (they load with weights_only)."""
        from mlflow.entities import Metric, Param, RunTag

        tags = self.tags | {"stage": stage} | ({"mlflow.parentRunId": parent} if parent else {})
        run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        logged = [Metric(k, float(v), now, 0) for k, v in metrics.items() if pd.notna(v)]
        for frame, step_column in curves:
            for record in frame.to_dict("records"):
                step = int(record.pop(step_column))
                logged += [Metric(k, float(v), now, step) for k, v in record.items() if pd.notna(v)]
        params_list = [Param(k, str(v)[:6000]) for k, v in flatten(params).items()]
        for start in range(0, max(len(logged), len(params_list), 1), 500):
            self.client.log_batch(
                run_id,
                metrics=logged[start : start + 500],
                params=params_list[start : start + 100],
                tags=[RunTag(k, v) for k, v in tags.items()] if start == 0 else [],
            )
        if self.inputs:
            self.client.log_inputs(run_id, datasets=self.inputs)
        for path in artifacts:
            log_file(self.client, run_id, path)
        if models is not None and models.exists():
            self.client.log_artifacts(run_id, str(models), "models")
        self.client.set_terminated(run_id)
        return run_id


def experiment_name(params: Params) -> str:
    return f"{params.data.name}-{params.model.name}"


def runs_page(experiment_id: str) -> str:
    """The UI's page of the experiment's training runs: MLflow's UI opens an experiment in its GenAI
    mode (traces, token usage) unless the link asks for model training, whatever the experiment's
    kind; `make ui` serves the local store on port 5000."""
    uri = tracking_uri()
    base = uri if uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}?workflowType=machine_learning"


@dataclass
class Benchmark:
    """What the compare stage logs, from the frames it read: the results table, the winners per
    point, the base training and fine-tuning curves, the retention iterations, the environment."""

    params: Params
    results: pd.DataFrame
    winners: pd.DataFrame
    train_curves: pd.DataFrame
    finetune_curves: pd.DataFrame
    iterations: pd.DataFrame
    env: dict[str, Any]

    @property
    def logged(self) -> dict[str, Any]:
        """What the runs log of params.yaml, as it has it."""
        return plain(self.params)

    @property
    def shared(self) -> dict[str, Any]:
        """The params every run logs."""
        return {k: self.logged[k] for k in ("data", "model", "device")}


def log_benchmark(benchmark: Benchmark) -> tuple[str, list[str]]:
    """Log the benchmark: a run for it, under it a run per base model and per point, and under each
    point a run per method. Returns the experiment's id and the ids of the benchmark run (first;
    `log_files` adds the report and figures to it) and of each point's run."""
    params = benchmark.params
    logger = Logger(experiment_name(params))
    logger.tags |= {f"env.{k}": str(v) for k, v in benchmark.env.items()}
    logger.use_split(params.data.name, paths.SPLIT)
    what = f"{params.data.name}/{params.model.name}"
    top = logger.run(f"{logger.tags['dvc_exp']} · {what} · {params.budget}", "compare", benchmark.logged, {})
    _log_base_models(logger, benchmark, top)
    parents = [top]
    for ratio, at_point in benchmark.results.groupby("ratio", sort=True):
        parent = _log_point(logger, benchmark, float(ratio), what, top)
        parents.append(parent)
        for key, rows in at_point.groupby("method", sort=False):
            _log_method(logger, benchmark, str(key), float(ratio), rows, parent)
    return logger.experiment_id, parents


def _log_base_models(logger: Logger, benchmark: Benchmark, top: str) -> None:
    """A run per seed's base model: its test metrics and training curve."""
    curves = benchmark.train_curves
    for seed, base in benchmark.results.groupby("seed").first().iterrows():
        curve = curves[curves["seed"] == seed].drop(columns=["seed", "lr"])
        logger.run(
            f"base seed {seed}",
            "train",
            benchmark.shared | {"train": benchmark.logged["train"], "seed": seed},
            {k.removeprefix("base_"): base[k] for k in base.index if k.startswith("base_")},
            [(curve, "epoch")],
            [paths.TRAIN_CURVES],
            top,
        )


def _log_point(logger: Logger, benchmark: Benchmark, ratio: float, what: str, top: str) -> str:
    """A run per point: which method won it, and which tied."""
    winners, budget, metric = benchmark.winners, benchmark.params.budget, of_columns(benchmark.winners.columns).metric
    best = winners[(winners["ratio"] == ratio) & (winners["phase"] == "finetuned")]
    return logger.run(
        f"{logger.tags['dvc_exp']} · {budget} {1 / (1 - ratio):g}× (ratio {ratio:g}) · {what}",
        "compare",
        {"budget": budget, "ratio": ratio, "seeds": benchmark.params.seeds},
        {f"{r.method}.finetuned_{metric}": r[metric] for _, r in best.iterrows()}
        | {f"{r.method}.tied_with_best": float(r.tied) for r in best.itertuples()},
        parent=top,
    )


def _log_method(logger: Logger, benchmark: Benchmark, key: str, ratio: float, rows: pd.DataFrame, parent: str) -> None:
    """A run per method and point: its params, mean and std over seeds of what is compared, each
    seed's accuracies and curves (fine-tuning epochs, retention iterations), its fine-tuned models."""
    params, logged = benchmark.params, benchmark.logged
    run_params = benchmark.shared | {
        "budget": params.budget,
        "ratio": ratio,
        "seeds": params.seeds,
        "method": key,
        "implementation": rows.iloc[0]["implementation"],
        "knobs": logged["methods"][key],
        "schedule": logged["schedule"],
        "recalibrate": params.recalibrate,
        "finetune": logged["finetune"],
    }
    numbers = rows[[c for c in rows.columns if c in COMPARED or c.startswith(("diagnostic.", "cost."))]]
    metric = of_columns(rows.columns).metric
    metrics = numbers.mean().to_dict() | {f"{k}_std": v for k, v in numbers.std().items()}
    curves = []
    for seed, row in rows.set_index("seed").iterrows():
        metrics |= {f"seed{seed}.{phase}_{metric}": row[f"{phase}_{metric}"] for phase in PHASES}
        curves += _seed_curves(benchmark, key, ratio, int(seed))
    logger.run(
        f"{key} · ratio {ratio:g}",
        "prune+finetune",
        run_params,
        metrics,
        curves,
        [paths.pruned_results(key), paths.finetuned_results(key)],
        parent,
        paths.finetuned_models(key) / paths.point_name(ratio),
    )


def _seed_curves(benchmark: Benchmark, key: str, ratio: float, seed: int) -> list[tuple[pd.DataFrame, str]]:
    """One seed's fine-tuning curve, and its retention iterations where it has them, as MLflow steps."""
    tuning, iterations = benchmark.finetune_curves, benchmark.iterations
    curve = tuning[(tuning["method"] == key) & (tuning["ratio"] == ratio) & (tuning["seed"] == seed)]
    found = [
        (
            curve[["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy"]].rename(
                columns=lambda c: c if c == "epoch" else f"seed{seed}.{c}"
            ),
            "epoch",
        )
    ]
    done = iterations[(iterations["method"] == key) & (iterations["seed"] == seed)]
    if len(done):  # the retention schedule: one step per iteration
        frame = done[["iteration", "val_accuracy", "val_loss", "units_kept", "params"]]
        found.append(
            (frame.rename(columns=lambda c: c if c == "iteration" else f"seed{seed}.iteration_{c}"), "iteration")
        )
    return found


def log_files(run_id: str, files: list[Path]) -> None:
    """Add files (the report, the figures) to a run as artifacts."""
    mlflow = client()
    for path in files:
        log_file(mlflow, run_id, path)


def log_file(client, run_id: str, path: Path) -> None:
    """One file, at its path in the repository: files of the same name stay apart
    (results/pruned/lamp.csv and results/finetuned/lamp.csv, every Taylor method's gradient_flow.png)."""
    client.log_artifact(run_id, str(path), artifact_path=path.parent.as_posix())
