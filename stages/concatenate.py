"""Stage concatenate: one row per method × seed with the base, pruned and fine-tuned metrics."""

from prunebench import paths, results
from prunebench.io import write_csv
from prunebench.params import load

rows = results.concatenate(list(load()["methods"]))
write_csv(paths.RESULTS, rows)
print(f"{paths.RESULTS}: {len(rows)} rows")
