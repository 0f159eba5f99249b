"""The results table: one row per method × point × seed, the base model's, the pruned and
fine-tuned models' metrics side by side (the concatenate stage writes it, the compare stage
reads it); and the test predictions behind the paired statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from prunebench import paths
from prunebench.files import atomic_path, read_csv
from prunebench.layouts import BASE_COLUMNS, DEPLOY_COLUMNS, SCORES


def result_rows(
    base: list[dict], pruned: list[dict], finetuned: list[dict], deployed: list[dict]
) -> list[dict[str, Any]]:
    """One method's rows: each pruned row (point × seed) with its fine-tuned result, its ONNX
    check and latencies (the deploy stage's), its seed's base model, and the ratios users
    compare on (all against the same seed's base model)."""
    by_seed = {row["seed"]: row for row in base}
    tuned = {(row["ratio"], row["seed"]): row for row in finetuned}
    deploy = {(row["ratio"], row["seed"]): row for row in deployed}
    rows = []
    for row in pruned:
        b = by_seed[row["seed"]]
        t = tuned[row["ratio"], row["seed"]]
        d = deploy[row["ratio"], row["seed"]]
        rows.append(
            {f"base_{k}": b[k] for k in (*BASE_COLUMNS, "perplexity") if k in b}
            | row
            | {k: v for k, v in t.items() if k not in row}
            | {k: d[k] for k in DEPLOY_COLUMNS}
            | {
                "target_reduction": 1 / (1 - row["ratio"]),
                "reduction": _times(1, row["kept"]),  # of the budget
                "macs_reduction": _times(b["macs_sparse"], row["macs_sparse"]),
                "params_reduction": _times(b["nonzeros"], row["nonzeros"]),
                "sparsity": 1 - row["nonzeros"] / b["params"],
            }
            | {f"{m}_change": t[f"finetuned_{m}"] - b[m] for m in SCORES if m in b}
        )
    return rows


def _times(base: float, kept: float) -> float:
    """How many times fewer: infinite where nothing is left (a language model's weight method can
    reach a deep MACs target only by removing every counted weight: its embeddings, output layer
    and attention products cost the rest)."""
    return base / kept if kept else float("inf")


def concatenate(methods: list[str]) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Every method's rows, in the order of params.yaml, and every test prediction, keyed
    "<method>/<point>/<seed>/<phase>"."""
    base = read_csv(paths.BASE_RESULTS)
    deployed = read_csv(paths.DEPLOY_RESULTS)
    rows: list[dict[str, Any]] = []
    predictions: dict[str, np.ndarray] = {}
    for key in methods:
        mine = [row for row in deployed if row["method"] == key]
        rows += result_rows(base, read_csv(paths.pruned_results(key)), read_csv(paths.finetuned_results(key)), mine)
        for path in (paths.pruned_predictions(key), paths.finetuned_predictions(key)):
            predictions |= {f"{key}/{name}": right for name, right in load_predictions(path).items()}
    return rows, predictions


def save_predictions(path: str | Path, outcomes: dict[str, Any]) -> None:
    """Each model's outcome on every test example (`loops.evaluate`): which examples a classifier
    gets right, as packed bits, or a language model's loss per sequence, as float32."""
    arrays: dict[str, np.ndarray] = {}
    sizes: dict[str, np.ndarray] = {}  # after every array, so that a file's bytes do not depend on the kind
    for name, outcome in outcomes.items():
        outcome = np.asarray(outcome)
        if outcome.dtype == bool:
            arrays[name], sizes[f"{name}:size"] = np.packbits(outcome), np.array(len(outcome))
        else:
            arrays[name] = outcome.astype(np.float32)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays, **sizes)  # type: ignore[arg-type]  # numpy types only allow_pickle


def load_predictions(path: str | Path) -> dict[str, np.ndarray]:
    """What `save_predictions` wrote: bool per example (packed bits with a size), or floats."""
    with np.load(path) as stored:
        return {
            name: np.unpackbits(stored[name])[: int(stored[f"{name}:size"])].astype(bool)
            if f"{name}:size" in stored.files
            else stored[name]
            for name in stored.files
            if not name.endswith(":size")
        }


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level of dotted keys: {"a": {"b": 1}} → {"a.b": 1}."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat
