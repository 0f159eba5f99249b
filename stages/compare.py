"""Stage compare: mean ± std per method, the report and its plots, the CSVs behind `dvc plots`,
and the MLflow runs."""

from prunebench.compare import compare
from prunebench.params import load

print(compare(load()))
