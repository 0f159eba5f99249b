"""The geometric retention schedule: prune a little, retrain, repeat, then pick a model to deploy.

Layer (channel group) l keeps N_l(t) = max(1, round(h_l · q^t)) units at iteration t, and the
iterations stop once the removed fraction of units reaches `ratio` (or at `max_iterations`).
Every finished iteration is a checkpoint on disk, so a killed run resumes at the first
unfinished one; a checkpoint is reused only if it was made from the same inputs.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from torch import nn
from tqdm import tqdm

from prunebench import surgery
from prunebench.io import read_csv, read_json, write_csv, write_json
from prunebench.models import output_units
from prunebench.train import EPOCH_COLUMNS

SUMMARY_COLUMNS = ("iteration", "kept_percent", "removed_fraction")  # of a `table` row; the rest are layers


def sizes(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, int]:
    """h_l: the output units of each channel group (keyed by its root layer; coupled layers count once)."""
    layers = dict(model.named_modules())
    return {group[0]: output_units(layers[group[0]]) for group in surgery.channel_groups(model, input_shape)}


def counts(row: dict[str, Any]) -> dict[str, int]:
    """The units each layer keeps in one row of `table`."""
    return {k: v for k, v in row.items() if k not in SUMMARY_COLUMNS}


def table(sizes: dict[str, int], q: float, max_iterations: int, ratio: float) -> list[dict[str, Any]]:
    """Units kept per layer at iterations 0, 1, …, up to the first that removes at least `ratio`
    of all units (or `max_iterations`, or once every layer is down to one unit)."""
    total = sum(sizes.values())
    rows = []
    for t in range(max_iterations + 1):
        kept = {name: max(1, round(h * q**t)) for name, h in sizes.items()}
        removed = 1 - sum(kept.values()) / total
        rows.append({"iteration": t, **kept, "kept_percent": 100 * (1 - removed), "removed_fraction": removed})
        if removed >= ratio or all(n == 1 for n in kept.values()):
            break
    return rows


def fingerprint(*parts: Any, files: Iterable[Path] = ()) -> str:
    """A digest of plain-data inputs and file contents: what a checkpoint was made from."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
    for path in sorted(files):
        digest.update(path.as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


class Checkpoints:
    """One seed's iterations: <dir>/<t>/model.pt (the best retrained weights), history.csv (per
    epoch, train and validation) and result.json, written last: its presence marks t finished.
    A directory made from other inputs (`config.json` differs) is cleared first."""

    def __init__(self, directory: Path, config: str):
        self.directory = directory
        stamp = directory / "config.json"
        if stamp.exists() and read_json(stamp).get("fingerprint") != config:
            shutil.rmtree(directory)
        write_json(stamp, {"fingerprint": config})

    def model(self, t: int) -> Path:
        return self.directory / str(t) / "model.pt"

    def finished(self) -> list[dict[str, Any]]:
        """Results of the finished iterations 0, 1, … up to the first gap."""
        rows = []
        while (done := self.directory / str(len(rows)) / "result.json").exists():
            rows.append(read_json(done))
        return rows

    def save(self, t: int, model: nn.Module, spec: dict, history: list[dict], result: dict[str, Any]) -> None:
        surgery.save(self.model(t), model, spec)
        write_csv(self.directory / str(t) / "history.csv", history, EPOCH_COLUMNS)
        write_json(self.directory / str(t) / "result.json", result)

    def history(self, t: int) -> list[dict[str, Any]]:
        return read_csv(self.directory / str(t) / "history.csv")

    def drop_after(self, t: int) -> None:
        """Remove iterations past t (left from a run with a larger `ratio`)."""
        for path in self.directory.iterdir():
            if path.is_dir() and path.name.isdigit() and int(path.name) > t:
                shutil.rmtree(path)


def iterate(model: nn.Module, spec: dict, rows: list[dict[str, Any]], checkpoints: Checkpoints,
            prune: Callable[[nn.Module, int, dict[str, int]], nn.Module],
            retrain: Callable[[nn.Module, int], list[dict]],
            assess: Callable[[nn.Module], dict[str, float]]) -> tuple[nn.Module, list[dict[str, Any]]]:
    """Run the schedule `rows` (from `table`): iteration 0 is the unpruned model; each later one
    prunes to its counts, retrains and assesses. Returns the last model and one result per iteration."""
    checkpoints.drop_after(rows[-1]["iteration"])
    results = checkpoints.finished()
    if results:
        model = surgery.load(checkpoints.model(len(results) - 1))[0]
        if len(results) < len(rows):
            tqdm.write(f"resuming at iteration {len(results)} ({checkpoints.directory})")
    for row in tqdm(rows[len(results):], desc="iterations", unit="it", leave=False):
        t = row["iteration"]
        history = []
        if t > 0:
            model = prune(model, t, counts(row))
            history = retrain(model, t)
        result = {"iteration": t, **counts(row), "units_kept": sum(counts(row).values()),
                  "removed_fraction": row["removed_fraction"], "epochs": len(history), **assess(model)}
        checkpoints.save(t, model, spec, history, result)
        results.append(result)
    return model, results


def choose(results: list[dict[str, Any]], tolerance: float) -> dict[str, Any]:
    """The deployed model: the smallest (fewest parameters; the earlier on a tie) whose validation
    accuracy is at least the unpruned model's (iteration 0) minus `tolerance`."""
    floor = results[0]["val_accuracy"] - tolerance
    best = min((r for r in results if r["val_accuracy"] >= floor), key=lambda r: (r["params"], r["iteration"]))
    return {"rule": f"fewest parameters with validation accuracy ≥ unpruned − {tolerance:g}",
            "iteration": best["iteration"], "val_accuracy": best["val_accuracy"], "params": best["params"],
            "units_kept": best["units_kept"]}
