"""Stage concatenate: one row per method × point × seed with the base, pruned and fine-tuned
metrics, and every test prediction in one file."""

from prunebench import paths, results
from prunebench.errors import reported
from prunebench.io import write_csv
from prunebench.params import load

with reported("concatenate"):
    rows, predictions = results.concatenate(list(load()["methods"]))
    write_csv(paths.RESULTS, rows)
    results.save_predictions(paths.PREDICTIONS, predictions)
    print(f"{paths.RESULTS}: {len(rows)} rows")
