"""The results table: one row per method × seed, the base, pruned and fine-tuned metrics side by
side (the concatenate stage writes it, the compare stage reads it)."""

from __future__ import annotations

from typing import Any

from prunebench import paths
from prunebench.io import read_json

PHASES = ("base", "pruned", "finetuned")


def result_rows(method: str, base: dict, pruned: dict, finetuned: dict) -> list[dict[str, Any]]:
    """One row per seed of one method: the three models' metrics side by side, and the ratios
    users compare on (all against the same seed's base model)."""
    rows = []
    for seed in pruned["seeds"]:
        row = {"method": method, "implementation": pruned["method"], "unit": pruned["unit"],
               "ratio": pruned["ratio"], "seed": int(seed)}
        for phase, metrics in zip(PHASES, (base, pruned, finetuned)):
            row |= {f"{phase}_{k}": v for k, v in metrics["seeds"][seed].items()}
        row["macs_reduction"] = row["base_macs_sparse"] / row["finetuned_macs_sparse"]
        row["params_reduction"] = row["base_nonzeros"] / row["finetuned_nonzeros"]
        row["speedup"] = row["base_latency_ms"] / row["finetuned_latency_ms"]
        row["accuracy_change"] = row["finetuned_accuracy"] - row["base_accuracy"]
        rows.append(row)
    return rows


def concatenate(methods: list[str]) -> list[dict[str, Any]]:
    """The rows of every method, in the order of params.yaml."""
    base = read_json(paths.BASE_METRICS)
    return [row for key in methods for row in result_rows(key, base, read_json(paths.pruned_metrics(key)),
                                                          read_json(paths.finetuned_metrics(key)))]


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level of dotted keys: {"a": {"b": 1}} → {"a.b": 1}."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat
