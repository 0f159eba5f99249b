"""Stage check: validate params.yaml before any stage that owns outputs starts.

DVC deletes a stage's outputs before running it, so a bad value must stop the pipeline here,
first. The output is constant, so a valid change never re-runs anything downstream by itself.
"""

import sys

from prunebench import paths, schema
from prunebench.io import write_text
from prunebench.params import ParamError, load

try:
    schema.validate(load())
except ParamError as error:
    sys.exit(str(error))
write_text(paths.PARAMS_OK, "params.yaml is valid\n")
