"""The rows of the CSV files one stage writes and another reads, defined once."""

from __future__ import annotations

from typing import Any

EPOCH_COLUMNS = ("epoch", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy")  # a `train.fit` record
BASE_COLUMNS = ("accuracy", "loss", "params", "nonzeros", "macs", "macs_sparse")  # results/base.csv
# what `loops.evaluate` measures: every model's accuracy and loss, a language model's perplexity too
METRICS = ("accuracy", "loss", "perplexity")
SCORES = ("accuracy", "perplexity")  # the metrics a task is judged on (`prunebench.task`)
# results/deploy.csv, after ROW_KEYS: the ONNX check of each model, then the latencies of the first
# seed's model at its point (ms; PyTorch and ONNX Runtime at measure.latency_batch and at batch 1)
# and its speed-ups over the base model timed beside it
DEPLOY_COLUMNS = (
    "onnx_max_difference",
    "onnx_argmax_agreement",
    "onnx_check",
    "latency_ms",
    "latency_b1_ms",
    "ort_ms",
    "ort_b1_ms",
    "speedup",
    "b1_speedup",
    "ort_speedup",
    "ort_b1_speedup",
)
ROW_KEYS = ("method", "ratio", "seed")  # what names a row of results/pruned/<m>.csv and results/finetuned/<m>.csv
PHASES = ("pruned", "recalibrated", "finetuned")  # the accuracies of a pruned model, in the order they happen
# the oracle's table (plots/methods/<m>/criteria_fidelity.csv): a row per criterion, tagged with seed and point
FIDELITY_TABLE = "criteria_fidelity"
FIDELITY_COLUMNS = ("criterion", "rho_global", "rho_layer_median", "seconds", "units", "refused")

# the retention schedule: a plan row is the iteration, the units kept per channel group, then these
PLAN_COLUMNS = ("iteration", "kept_percent", "removed_fraction", "budget_kept")
# and an iteration's result (plots/methods/<m>/iterations.csv) the iteration's counts, then these
ITERATION_COLUMNS = (
    "iteration",
    "units_kept",
    "removed_fraction",
    "budget_kept",
    "epochs",
    "val_accuracy",
    "val_loss",
    "params",
    "macs",
)


# how the retention schedule chooses its deployed model (`retention.choose`, and the report says it),
# by whether the task's metric is higher-is-better: accuracy, or a language model's perplexity
RETENTION_RULES = {
    True: "fewest parameters with validation accuracy ≥ unpruned − {tolerance}",
    False: "fewest parameters with validation perplexity ≤ unpruned × (1 + {tolerance})",
}


def phase_columns(phase: str, result: dict[str, Any]) -> dict[str, float]:
    """An evaluation's metrics as a result row has them: `<phase>_accuracy`, `<phase>_loss` and,
    for a language model, `<phase>_perplexity`."""
    return {f"{phase}_{k}": result[k] for k in METRICS if k in result}


def counts(row: dict[str, Any]) -> dict[str, int]:
    """The units each channel group keeps in a row of the retention plan."""
    return {k: v for k, v in row.items() if k not in PLAN_COLUMNS}
