"""Stage data: decide the fixed train / validation / test split and describe it."""

import sys

from prunebench import data
from prunebench.io import write_json
from prunebench.params import load
from prunebench.pipeline import SPLIT

params = load()
try:
    split = data.prepare(params["data"])
except data.DataMissing as error:
    sys.exit(str(error))
write_json(SPLIT, split)
write_json("metrics/data.json", {"dataset": split["dataset"], "num_classes": split["num_classes"],
                                 **data.split_sizes(split)})
print(f"{split['dataset']}: " + ", ".join(f"{k} {v}" for k, v in data.split_sizes(split).items()))
