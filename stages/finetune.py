"""Stage finetune@<method>: fine-tune every pruned model with the same budget; masks stay applied."""

import sys

from prunebench.params import load
from prunebench.pipeline import finetune_method

finetune_method(sys.argv[1], load())
