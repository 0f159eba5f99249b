"""MLflow logging, done once at the end of the pipeline from what the stages wrote.

So MLflow shows exactly what DVC produced (no half-logged runs from a failed stage), and only
one stage pays for importing mlflow. Per benchmark: a parent run with the report and plots,
a child run per base model, and one per method × seed with its curves as steps.

The store is `sqlite:///<repo>/mlflow.db` (artifacts in `<repo>/mlartifacts`), resolved to the
main checkout even when DVC runs an experiment in a temporary copy (`--temp`, `--queue`): DVC
sets DVC_ROOT to the main repository there. MLFLOW_TRACKING_URI overrides the store.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from prunebench import paths
from prunebench.results import flatten

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # a benchmark should not phone home


def repo_root() -> Path:
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo_root() / 'mlflow.db'}"


def git_commit() -> str:
    if os.environ.get("DVC_EXP_BASELINE_REV"):
        return os.environ["DVC_EXP_BASELINE_REV"]
    done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else "unknown"


class Logger:
    """Thin wrapper over MlflowClient: batch-logs params, metrics and step curves into one experiment."""

    def __init__(self, experiment: str):
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri())
        found = self.client.get_experiment_by_name(experiment)
        if found is not None:
            self.experiment_id = found.experiment_id
        else:
            local = (repo_root() / "mlartifacts" / experiment).as_uri()
            location = None if os.environ.get("MLFLOW_TRACKING_URI") else local
            self.experiment_id = self.client.create_experiment(experiment, artifact_location=location)
        self.tags = {"dvc_exp": os.environ.get("DVC_EXP_NAME", "workspace"), "git_commit": git_commit()}

    def run(self, name: str, stage: str, params: dict[str, Any], metrics: dict[str, float],
            curves: Iterable[tuple[pd.DataFrame, str]] = (), artifacts: Iterable[Path] = (),
            parent: str | None = None) -> str:
        """`curves`: (frame, its step column) pairs; every other column is logged as a metric per step."""
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
            self.client.log_batch(run_id, metrics=logged[start:start + 500], params=params_list[start:start + 100],
                                  tags=[RunTag(k, v) for k, v in tags.items()] if start == 0 else [])
        for path in artifacts:
            self.client.log_artifact(run_id, str(path))
        self.client.set_terminated(run_id)
        return run_id


def log_benchmark(params: dict[str, Any], results: pd.DataFrame, summary: pd.DataFrame, report_files: list[Path],
                  train_curves: pd.DataFrame, finetune_curves: pd.DataFrame, iterations: pd.DataFrame,
                  deployed: dict[str, dict[str, dict]]) -> str:
    """Log the benchmark: parent run, base runs, method × seed runs. Returns the parent run id.
    The frames are what the compare stage read: the base training curves (per seed), the
    fine-tuning curves and the retention iterations (per method and seed), and per retention
    method and seed the deployed choice."""
    logger = Logger(f"{params['data']['name']}-{params['model']['name']}")
    means = {f"{r['method']}.{k}": v for r in summary.to_dict("records")
             for k, v in r.items() if k.endswith("_mean") and not k.startswith("base_")}
    parent = logger.run("benchmark", "compare", params, means, artifacts=report_files)
    shared = {k: params[k] for k in ("data", "model", "device")}
    for seed in params["seeds"]:
        base = results[results["seed"] == seed].iloc[0]
        curve = train_curves[train_curves["seed"] == seed].drop(columns=["seed", "lr"])
        logger.run(f"base seed {seed}", "train", shared | {"train": params["train"], "seed": seed},
                   {k.removeprefix("base_"): base[k] for k in base.index if k.startswith("base_")},
                   [(curve, "epoch")], [paths.TRAIN_CURVES], parent)
    for row in results.to_dict("records"):
        key, seed = row["method"], row["seed"]
        curve = finetune_curves[(finetune_curves["method"] == key) & (finetune_curves["seed"] == seed)]
        run_params = shared | {"ratio": params["ratio"], "seed": seed, "method": key,
                               "implementation": row["implementation"], "knobs": params["methods"][key] or {},
                               "schedule": params["schedule"], "finetune": params["finetune"]}
        metrics = {k: v for k, v in row.items() if isinstance(v, (int, float)) and k not in ("seed", "ratio")}
        curves = [(curve.drop(columns=["method", "seed", "lr"]), "epoch")]
        if key in deployed:  # the retention schedule: one step per iteration, and the deployed choice
            frame = iterations[(iterations["method"] == key) & (iterations["seed"] == seed)]
            frame = frame[["iteration", "val_accuracy", "val_loss", "units_kept", "params"]]
            curves.append((frame.rename(columns=lambda c: c if c == "iteration" else f"iteration_{c}"), "iteration"))
            choice = deployed[key][str(seed)]
            metrics |= {f"deployed_{k}": choice[k] for k in ("iteration", "val_accuracy", "params", "units_kept")}
        logger.run(f"{key} seed {seed}", "prune+finetune", run_params, metrics, curves,
                   [paths.pruned_metrics(key), paths.finetuned_metrics(key)], parent)
    return parent
