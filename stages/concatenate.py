"""Stage concatenate: one table of every method, point and seed; every test prediction in one file."""

from prunebench.errors import reported
from prunebench.params import load
from prunebench.stages.concatenate import run

with reported("concatenate"):
    run(load())
