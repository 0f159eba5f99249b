"""Stage sensitivity: prune one layer (unstructured, by magnitude) or one channel group
(structured, by filter L1) at a time and measure validation accuracy without retraining, for
every ratio in `sensitivity.ratios` and every seed's base model."""

from prunebench.errors import reported
from prunebench.params import load
from prunebench.sensitivity import sweep_base_models

with reported("sensitivity"):
    sweep_base_models(load())
