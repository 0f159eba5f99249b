"""Stage data: decide the fixed train / validation / test split and describe it."""

from prunebench import data
from prunebench.io import write_json
from prunebench.params import load
from prunebench.pipeline import SPLIT

params = load()
split = data.prepare(params["data"])
write_json(SPLIT, split)
write_json("metrics/data.json", {"dataset": split["dataset"], "num_classes": split["num_classes"],
                                 **data.split_sizes(split)})
print(f"{split['dataset']}: " + ", ".join(f"{k} {v}" for k, v in data.split_sizes(split).items()))
