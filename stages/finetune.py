"""Stage finetune@<method>: fine-tune every pruned model of one method with the same budget."""

import sys

from prunebench.errors import reported
from prunebench.params import load
from prunebench.stages.finetune import run

with reported(f"finetune@{sys.argv[1]}"):
    run(load(), sys.argv[1])
