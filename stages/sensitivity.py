"""Stage sensitivity: each layer and channel group pruned alone, validation accuracy per ratio."""

from prunebench.errors import reported
from prunebench.params import load
from prunebench.stages.sensitivity import run

with reported("sensitivity"):
    run(load())
