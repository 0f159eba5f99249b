"""Stage prune@<method>: prune every seed's base model with one method at every operating point."""

import sys

from prunebench.errors import reported
from prunebench.params import load
from prunebench.prune import prune_method

with reported(f"prune@{sys.argv[1]}"):
    prune_method(sys.argv[1], load())
