"""Stage data: decide the fixed train / validation / test split and describe it."""

import sys

from prunebench import data, paths
from prunebench.io import write_json
from prunebench.params import load

try:
    split = data.prepare(load()["data"])
except data.DataMissing as error:
    sys.exit(str(error))
write_json(paths.SPLIT, split)
write_json(paths.DATA_METRICS, {"dataset": split["dataset"], "num_classes": split["num_classes"],
                                 **data.split_sizes(split)})
print(f"{split['dataset']}: " + ", ".join(f"{k} {v}" for k, v in data.split_sizes(split).items()))
