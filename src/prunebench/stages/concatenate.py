"""The concatenate stage: one row per method × point × seed with the base, pruned and fine-tuned
metrics, and every test prediction in one file."""

from __future__ import annotations

from prunebench import paths
from prunebench.files import write_csv
from prunebench.params import Params
from prunebench.report import results


def run(params: Params) -> None:
    rows, predictions = results.concatenate(list(params.methods))
    write_csv(paths.RESULTS, rows)
    results.save_predictions(paths.PREDICTIONS, predictions)
    print(f"{paths.RESULTS}: {len(rows)} rows")
