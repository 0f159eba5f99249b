"""The data stage: decide the fixed train / validation / test split and describe it."""

from __future__ import annotations

from prunebench import paths
from prunebench.files import write_json
from prunebench.params import Params
from prunebench.training import data


def run(params: Params) -> None:
    split = data.prepare(params.data)
    sizes = data.split_sizes(split)
    write_json(paths.SPLIT, split)
    write_json(paths.DATA_METRICS, {"dataset": split["dataset"], "num_classes": split["num_classes"], **sizes})
    print(f"{split['dataset']}: " + ", ".join(f"{k} {v}" for k, v in sizes.items()))
