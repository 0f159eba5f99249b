"""Stage concatenate: one row per method × seed with the base, pruned and fine-tuned metrics."""

from prunebench.io import read_json, write_csv
from prunebench.params import load
from prunebench.pipeline import RESULTS
from prunebench.report import result_rows

params = load()
base = read_json("metrics/base.json")
rows = []
for key in params["methods"]:
    rows += result_rows(key, base, read_json(f"metrics/pruned/{key}.json"), read_json(f"metrics/finetuned/{key}.json"))
write_csv(RESULTS, rows)
print(f"{RESULTS}: {len(rows)} rows")
