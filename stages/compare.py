"""Stage compare: mean ± std per method, the report and its plots, the CSVs behind `dvc plots`,
and the MLflow runs."""

from prunebench.compare import compare
from prunebench.errors import reported
from prunebench.params import load

with reported("compare"):
    print(compare(load()))
