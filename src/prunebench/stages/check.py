"""The check stage: validate params.yaml, and record the code each stage runs, before any stage
that owns outputs starts.

DVC deletes a stage's outputs before running it, so a bad value must stop the pipeline here,
first. The params output is constant, so a valid change never re-runs anything downstream by
itself; a stage's code manifest changes exactly when a file it runs does (`prunebench.code`).
"""

from __future__ import annotations

from pathlib import Path

from prunebench import code, params, paths, schema
from prunebench.io import write_json, write_text


def run(scripts: list[Path]) -> None:
    """`scripts`: the stage scripts whose manifests to write."""
    checked = schema.validate(params.read())
    write_text(paths.PARAMS_OK, "params.yaml is valid\n")
    for script in scripts:
        write_json(paths.code_manifest(script.stem), code.manifest(script, checked.model))
