"""Stage check: validate params.yaml, and record the code each stage runs, before any stage that
owns outputs starts.

DVC deletes a stage's outputs before running it, so a bad value must stop the pipeline here,
first. The params output is constant, so a valid change never re-runs anything downstream by
itself; a stage's code manifest changes exactly when a file it runs does (`prunebench.code`).
"""

from pathlib import Path

from prunebench import code, paths, schema
from prunebench.errors import reported
from prunebench.io import write_json, write_text
from prunebench.params import load

with reported("check"):
    params = load()
    schema.validate(params)
    write_text(paths.PARAMS_OK, "params.yaml is valid\n")
    for script in sorted(Path(__file__).parent.glob("*.py")):
        if script.name != Path(__file__).name:
            write_json(paths.code_manifest(script.stem), code.manifest(script, params["model"]))
