"""Stage finetune@<method>: fine-tune every pruned model with the same budget; masks stay applied."""

import sys

from prunebench.errors import reported
from prunebench.params import load
from prunebench.pipeline import finetune_method

with reported(f"finetune@{sys.argv[1]}"):
    finetune_method(sys.argv[1], load())
