"""Stage prune@<method>: prune every seed's base model with one method at every operating point."""

import sys

from prunebench.errors import reported
from prunebench.params import load
from prunebench.stages.prune import run

with reported(f"prune@{sys.argv[1]}"):
    run(load(), sys.argv[1])
