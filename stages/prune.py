"""Stage prune@<method>: prune every seed's base model with one method, following its schedule.
This script and the modules it imports (`code.closure`) are what a retention checkpoint was made from."""

import sys

from prunebench.code import closure
from prunebench.params import load
from prunebench.prune import prune_method

prune_method(sys.argv[1], load(), closure(__file__))
