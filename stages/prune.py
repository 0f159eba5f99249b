"""Stage prune@<method>: prune every seed's base model with one method at every operating point."""

import sys

from prunebench.params import load
from prunebench.prune import prune_method

prune_method(sys.argv[1], load())
