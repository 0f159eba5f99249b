"""The geometric retention schedule: prune a little, retrain, repeat, then pick a model to deploy.

Layer (channel group) l keeps N_l(t) = max(1, round(h_l · q^t)) units at iteration t, and the
iterations stop at the first that keeps at most the target share of the budget (MACs,
parameters or units: `prunebench.pruning.budget`), or at `max_iterations`. An operating point takes
the first iteration that reaches it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from prunebench.layouts import RETENTION_RULES, counts
from prunebench.progress import bar
from prunebench.training import modelfile


def table(
    sizes: dict[str, int], q: float, max_iterations: int, kept: Callable[[dict[str, int]], float], target: float
) -> list[dict[str, Any]]:
    """Units kept per layer at iterations 0, 1, …, up to the first whose counts keep at most
    `target` of the budget (`kept` of the counts), or `max_iterations`, or once every layer is
    down to one unit. Each row also has the share of units kept and removed, and of the budget kept."""
    total = sum(sizes.values())
    rows: list[dict[str, Any]] = []
    for t in range(max_iterations + 1):
        counts = {name: max(1, round(h * q**t)) for name, h in sizes.items()}
        removed = 1 - sum(counts.values()) / total
        rows.append(
            {
                "iteration": t,
                **counts,
                "kept_percent": 100 * (1 - removed),
                "removed_fraction": removed,
                "budget_kept": kept(counts),
            }
        )
        if rows[-1]["budget_kept"] <= target or all(n == 1 for n in counts.values()):
            break
    return rows


def first_reaching(rows: list[dict[str, Any]], target: float) -> dict[str, Any]:
    """The first iteration that keeps at most `target` of the budget, else the last."""
    return next((row for row in rows if row["budget_kept"] <= target), rows[-1])


@dataclass
class Iterations:
    """One seed's finished iterations, as the job keeps them for the stage: each one's best
    retrained model (a model file's bytes), its training history and its result."""

    models: list[bytes] = field(default_factory=list)
    histories: list[list[dict[str, Any]]] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)

    def add(self, model: nn.Module, spec: dict, history: list[dict], result: dict[str, Any]) -> None:
        self.models.append(modelfile.dumps(model, spec))
        self.histories.append(history)
        self.results.append(result)


def iterate(
    model: nn.Module,
    spec: dict,
    rows: list[dict[str, Any]],
    iterations: Iterations,
    prune: Callable[[nn.Module, int, dict[str, int]], nn.Module],
    retrain: Callable[[nn.Module, int], list[dict]],
    assess: Callable[[nn.Module], dict[str, float]],
) -> nn.Module:
    """Run the schedule `rows` (from `table`): iteration 0 is the unpruned model; each later one
    prunes to its counts, retrains and assesses (`assess` gives the ITERATION_COLUMNS from
    val_accuracy on). Returns the last model; `iterations` gets every iteration's model, history
    and result: the iteration's counts per layer, then `layouts.ITERATION_COLUMNS`."""
    for row in bar(rows, desc="iterations", unit="it", leave=False):
        t = row["iteration"]
        history: list[dict] = []
        seconds = [0.0, 0.0]  # pruning, retraining: wall-clock
        if t > 0:
            start = time.perf_counter()
            model = prune(model, t, counts(row))
            middle = time.perf_counter()
            history = retrain(model, t)
            seconds = [middle - start, time.perf_counter() - middle]
        result = {
            "iteration": t,
            **counts(row),
            "units_kept": sum(counts(row).values()),
            "removed_fraction": row["removed_fraction"],
            "budget_kept": row["budget_kept"],
            "epochs": len(history),
            "pruning_seconds": seconds[0],
            "retrain_seconds": seconds[1],
            **assess(model),
        }
        iterations.add(model, spec, history, result)
    return model


def choose(results: list[dict[str, Any]], tolerance: float, higher_is_better: bool = True) -> dict[str, Any]:
    """The deployed model: the smallest (fewest parameters; the earlier on a tie) whose validation
    accuracy is at least the unpruned model's (iteration 0) minus `tolerance`; for a language model
    (`higher_is_better` False), whose validation perplexity is at most the unpruned model's times
    1 + `tolerance` (its loss at most the unpruned one's plus log(1 + `tolerance`))."""
    if higher_is_better:
        floor = results[0]["val_accuracy"] - tolerance
        fits = [r for r in results if r["val_accuracy"] >= floor]
    else:
        ceiling = results[0]["val_loss"] + math.log1p(tolerance)
        fits = [r for r in results if r["val_loss"] <= ceiling]
    best = min(fits, key=lambda r: (r["params"], r["iteration"]))
    return {
        "rule": RETENTION_RULES[higher_is_better].format(tolerance=f"{tolerance:g}"),
        "iteration": best["iteration"],
        "val_accuracy": best["val_accuracy"],
        "params": best["params"],
        "units_kept": best["units_kept"],
    }
