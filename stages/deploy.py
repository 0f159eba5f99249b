"""Stage deploy: every fine-tuned model exported to ONNX and checked in ONNX Runtime; each point's
models timed side by side."""

from prunebench.errors import reported
from prunebench.params import load
from prunebench.stages.deploy import run

with reported("deploy"):
    run(load())
