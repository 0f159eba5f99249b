"""Every file the pipeline writes, named once. Paths are relative to the repository root, where
DVC runs the stages; dvc.yaml declares the same outputs (tests/test_wiring.py compares them)."""

from __future__ import annotations

from pathlib import Path

PARAMS_OK = Path("checks/params.ok")
MODEL_CHECK = Path("checks/model.json")  # frozen channel groups and refused methods (the check stage)
CODE = Path("checks/code")  # per stage, the files it runs and their hashes: its code dependency

SPLIT = Path("data/prepared/split.json")
DATA_METRICS = Path("metrics/data.json")

BASE_MODELS = Path("models/base")
BASE_METRICS = Path("metrics/base.json")  # the mean over seeds, for `dvc exp show`
BASE_RESULTS = Path("results/base.csv")  # one row per seed
TRAIN_CURVES = Path("plots/train/curves.csv")

ONNX_MODELS = Path("models/onnx")  # every fine-tuned model and each base model as ONNX (the deploy stage)
DEPLOY_RESULTS = Path("results/deploy.csv")  # per method × point × seed: the ONNX check and the latencies

SENSITIVITY_PLOTS = Path("plots/sensitivity")
SENSITIVITY = SENSITIVITY_PLOTS / "sensitivity.csv"
SENSITIVITY_UNSTRUCTURED = SENSITIVITY_PLOTS / "unstructured.png"
SENSITIVITY_STRUCTURED = SENSITIVITY_PLOTS / "structured.png"

RESULTS = Path("results/results.csv")
PREDICTIONS = Path("results/predictions.npz")
SUMMARY = Path("results/summary.csv")  # mean ± std per method × point
WINNERS = Path("results/winners.csv")  # per point: every method that reached it, best first, tied or not
REPORT = Path("results/report.md")
SUMMARY_METRICS = Path("metrics/summary.json")
COMPARE_PLOTS = Path("plots/compare")

PLOTS_TEMPLATE = Path(".dvc/plots/offline.html")  # written at install: .dvc/config names it
PLOT_TEMPLATES = Path(".dvc/plots")  # the Vega-Lite templates; "<METHOD_COLOURS>" marks a method colour scale
PLOT_TASK = PLOT_TEMPLATES / "task.yaml"  # dvc.yaml's `vars`: the task's columns the plots show (git-tracked)
COLOURED_TEMPLATES = COMPARE_PLOTS / "templates"  # those with a colour scale, filled with this run's colours

CHECKPOINTS = Path("checkpoints")  # resume caches: neither DVC outputs nor in git


def code_manifest(stage: str) -> Path:
    return CODE / f"{stage}.json"


def base_model(seed: int) -> Path:
    return BASE_MODELS / f"{seed}.pt"


def point_name(ratio: float) -> str:
    """An operating point as a file name: the requested ratio, e.g. "0.875"."""
    return f"{ratio:g}"


def pruned_models(method: str) -> Path:
    return Path("models/pruned") / method


def pruned_model(method: str, ratio: float, seed: int) -> Path:
    return pruned_models(method) / point_name(ratio) / f"{seed}.pt"


def deployed_model(method: str, seed: int) -> Path:
    """The retention schedule's chosen iteration."""
    return pruned_models(method) / "deployed" / f"{seed}.pt"


def pruned_results(method: str) -> Path:
    """One row per point × seed: the budget met, accuracy after pruning and after recalibration, cost."""
    return Path("results/pruned") / f"{method}.csv"


def pruned_predictions(method: str) -> Path:
    """Which test examples each pruned and recalibrated model gets right (for paired statistics)."""
    return Path("results/pruned") / f"{method}.npz"


def method_plots(method: str) -> Path:
    """The method's own tables: weights, per-layer cost, its diagnostics, the retention iterations."""
    return Path("plots/methods") / method


def method_layers(method: str) -> Path:
    """Per-layer MACs, nonzero weights and fraction removed, per point and seed."""
    return method_plots(method) / "layers.csv"


def method_weights(method: str) -> Path:
    """Histogram of the nonzero prunable weights, base model and each point (first seed)."""
    return method_plots(method) / "weights.csv"


def method_table(method: str, name: str) -> Path:
    """A table the method's scoring wrote (`Scored.tables`), e.g. the oracle's "criteria_fidelity"."""
    return method_plots(method) / f"{name}.csv"


def method_retention(method: str) -> Path:
    """The retention schedule's plan: units each group keeps per iteration."""
    return method_plots(method) / "retention.csv"


def method_iterations(method: str) -> Path:
    """The retention schedule's results, one row per seed × iteration."""
    return method_plots(method) / "iterations.csv"


def refusal(outputs: Path) -> Path:
    """In the output folders of a method that refuses the model (its pruned and fine-tuned models,
    its tables): why, in place of results."""
    return outputs / "refused.json"


def finetuned_models(method: str) -> Path:
    return Path("models/finetuned") / method


def finetuned_model(method: str, ratio: float, seed: int) -> Path:
    return finetuned_models(method) / point_name(ratio) / f"{seed}.pt"


def finetuned_results(method: str) -> Path:
    return Path("results/finetuned") / f"{method}.csv"


def finetuned_predictions(method: str) -> Path:
    return Path("results/finetuned") / f"{method}.npz"


def finetune_curves(method: str) -> Path:
    return Path("plots/finetune") / f"{method}.csv"


def method_figures(method: str) -> Path:
    """The compare stage's figures of one method's run."""
    return COMPARE_PLOTS / "methods" / method


def onnx_model(method: str, ratio: float, seed: int) -> Path:
    return ONNX_MODELS / method / point_name(ratio) / f"{seed}.onnx"


def onnx_base_model(seed: int) -> Path:
    return ONNX_MODELS / "base" / f"{seed}.onnx"


def finished_jobs(stage: str) -> Path:
    """A stage's resume cache (`resume.Jobs`): "train", "sensitivity", "prune/<method>", "finetune/<method>"."""
    return CHECKPOINTS / stage
