"""Stage train: one base model per seed."""

from prunebench.errors import reported
from prunebench.params import load
from prunebench.stages.train import run

with reported("train"):
    run(load())
