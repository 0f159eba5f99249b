"""Every file the pipeline writes, named once. Paths are relative to the repository root, where
DVC runs the stages; dvc.yaml declares the same outputs (tests/test_wiring.py compares them)."""

from __future__ import annotations

from pathlib import Path

PARAMS_OK = Path("checks/params.ok")

SPLIT = Path("data/prepared/split.json")
DATA_METRICS = Path("metrics/data.json")

BASE_MODELS = Path("models/base")
BASE_METRICS = Path("metrics/base.json")
TRAIN_CURVES = Path("plots/train/curves.csv")

SENSITIVITY_PLOTS = Path("plots/sensitivity")
SENSITIVITY = SENSITIVITY_PLOTS / "sensitivity.csv"
SENSITIVITY_UNSTRUCTURED = SENSITIVITY_PLOTS / "unstructured.png"
SENSITIVITY_STRUCTURED = SENSITIVITY_PLOTS / "structured.png"

RESULTS = Path("results/results.csv")
SUMMARY = Path("results/summary.csv")
REPORT = Path("results/report.md")
SUMMARY_METRICS = Path("metrics/summary.json")
COMPARE_PLOTS = Path("plots/compare")

CHECKPOINTS = Path("checkpoints")  # resume caches: neither DVC outputs nor in git


def base_model(seed: int) -> Path:
    return BASE_MODELS / f"{seed}.pt"


def pruned_models(method: str) -> Path:
    return Path("models/pruned") / method


def pruned_model(method: str, seed: int) -> Path:
    return pruned_models(method) / f"{seed}.pt"


def deployed_model(method: str, seed: int) -> Path:
    """The retention schedule's chosen iteration."""
    return pruned_models(method) / "deployed" / f"{seed}.pt"


def pruned_metrics(method: str) -> Path:
    return Path("metrics/pruned") / f"{method}.json"


def method_plots(method: str) -> Path:
    """The method's own tables and figures: weights, per-layer cost, diagnostics, iterations."""
    return Path("plots/methods") / method


def method_layers(method: str) -> Path:
    """Per-layer MACs and nonzero weights before and after pruning (first seed)."""
    return method_plots(method) / "layers.csv"


def method_iterations(method: str) -> Path:
    """The retention schedule's results, one row per seed × iteration."""
    return method_plots(method) / "iterations.csv"


def finetuned_models(method: str) -> Path:
    return Path("models/finetuned") / method


def finetuned_model(method: str, seed: int) -> Path:
    return finetuned_models(method) / f"{seed}.pt"


def finetuned_metrics(method: str) -> Path:
    return Path("metrics/finetuned") / f"{method}.json"


def finetune_curves(method: str) -> Path:
    return Path("plots/finetune") / f"{method}.csv"


def retention_checkpoints(method: str, seed: int) -> Path:
    return CHECKPOINTS / method / str(seed)
