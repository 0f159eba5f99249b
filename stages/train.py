"""Stage train: one base model per seed."""

from prunebench.params import load
from prunebench.pipeline import train_base

train_base(load())
