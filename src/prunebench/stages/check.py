"""The check stage: validate params.yaml, check the model, and record the code each stage runs,
before any stage that owns outputs starts.

DVC deletes a stage's outputs before running it, so a bad value must stop the pipeline here,
first. So must a model that cannot run: the model is built, its weights loaded and one batch run
through it, in seconds, and its channel groups checked; frozen groups and the methods that refuse
the model are said here and written for the report (`paths.MODEL_CHECK`), and the other methods
run. The params output is constant, so a valid change never re-runs anything downstream by
itself; a stage's code manifest changes exactly when a file it runs does (`prunebench.sources`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from prunebench import params, paths, runtime, schema, sources
from prunebench.errors import UserError, briefly
from prunebench.files import write_json, write_text
from prunebench.params import Params
from prunebench.progress import say

if TYPE_CHECKING:  # the check stage imports torch only to build the model, in `inspect_model`
    from prunebench.pruning.inspection import Inspection


def run(scripts: list[Path]) -> None:
    """`scripts`: the stage scripts whose manifests to write."""
    checked = schema.validate(params.read())
    found = inspect_model(checked)
    for line in found.lines():
        say(line)
    write_json(paths.MODEL_CHECK, found.as_json())
    write_text(paths.PARAMS_OK, "params.yaml is valid\n")
    from prunebench.training import data  # imported by inspect_model already

    plot_vars = data.task_of(checked.data).plot_vars()
    if not paths.PLOT_TASK.exists() or paths.PLOT_TASK.read_text() != plot_vars:
        write_text(paths.PLOT_TASK, plot_vars)  # dvc plots then show the task's columns
    for script in scripts:
        write_json(paths.code_manifest(script.stem), sources.manifest(script, checked.model))


def inspect_model(checked: Params) -> Inspection:
    """Build the model of params.yaml, load its weights, run one batch of the data's shape through
    it, and inspect its channel groups and the methods against it."""
    import torch

    from prunebench.pruning import inspection
    from prunebench.pruning.methods import Context
    from prunebench.training import data, inputs, models, pretrained

    torch.set_num_threads(1)
    runtime.stage_device(checked)  # a device this machine lacks: here, not when the first stage starts
    task, family = data.task_of(checked.data), models.family(checked.model.name)
    if family.task != task.name:
        what = "a language model" if family.task == "language_modelling" else "a model of images"
        text = "text: shakespeare or text" if family.task == "language_modelling" else "images"
        raise UserError(
            f"model.name = {checked.model.name!r}: {what}, but data.name = {checked.data.name!r} is for "
            f"{task.name.replace('_', ' ')}: use data of {text}"
        )
    shape = data.shape_of(checked.data)
    spec = models.spec(checked.model.as_dict(), **shape)
    input_shape = inputs.shape_of_spec(spec)
    model = pretrained.initial(spec).eval()
    torch.manual_seed(0)
    batch = inputs.example(input_shape, 2, random=True)
    classes = shape.get("num_classes") or shape["vocab_size"]
    expected = (2, classes) if "num_classes" in shape else (2, shape["sequence_length"], classes)
    try:
        with torch.no_grad():
            found = tuple(model(batch).shape)
    except Exception as error:  # the user's model: whatever it raises is the finding
        raise UserError(
            f"model.name = {checked.model.name!r}: one batch of shape {tuple(batch.shape)} fails ({briefly(error)})"
        ) from error
    if found != expected:
        what = "class" if "num_classes" in shape else "token of the vocabulary, at every position"
        raise UserError(
            f"model.name = {checked.model.name!r}: one batch of shape {tuple(batch.shape)} gives outputs of "
            f"shape {found}; expected {expected}: one logit per {what} of data.name = {checked.data.name!r}"
        )
    labels = torch.randint(0, classes, expected[:-1])
    ctx = Context(
        batches=lambda: iter([(batch, labels)]),
        device=torch.device("cpu"),
        generator=torch.Generator().manual_seed(0),
        input_shape=input_shape,
    )
    return inspection.inspect(model, checked.methods, ctx)
