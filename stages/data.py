"""Stage data: decide the fixed train / validation / test split and describe it."""

from prunebench import data, paths
from prunebench.errors import reported
from prunebench.io import write_json
from prunebench.params import load

with reported("data"):
    split = data.prepare(load()["data"])
    write_json(paths.SPLIT, split)
    write_json(paths.DATA_METRICS, {"dataset": split["dataset"], "num_classes": split["num_classes"],
                                     **data.split_sizes(split)})
    print(f"{split['dataset']}: " + ", ".join(f"{k} {v}" for k, v in data.split_sizes(split).items()))
