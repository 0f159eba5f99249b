"""Stage check: validate params.yaml and record the code each stage runs, before any stage that
owns outputs starts."""

from pathlib import Path

from prunebench.errors import reported
from prunebench.stages.check import run

with reported("check"):
    run(sorted(script for script in Path(__file__).parent.glob("*.py") if script.name != Path(__file__).name))
