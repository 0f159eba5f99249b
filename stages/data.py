"""Stage data: decide the fixed train / validation / test split and describe it."""

from prunebench.errors import reported
from prunebench.params import load
from prunebench.stages.data import run

with reported("data"):
    run(load())
