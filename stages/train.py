"""Stage train: one base model per seed."""

from prunebench.errors import reported
from prunebench.params import load
from prunebench.pipeline import train_base

with reported("train"):
    train_base(load())
