"""Stage compare: the tables, figures, report and MLflow runs of the comparison."""

from prunebench.errors import reported
from prunebench.params import load
from prunebench.stages.compare import run

with reported("compare"):
    run(load())
