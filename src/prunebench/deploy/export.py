"""A saved model as a standalone ONNX network, checked in ONNX Runtime against PyTorch.

The model is rebuilt as deployment would (`modelfile.load_pruned`: channel methods physically
smaller, masks folded into the weights) and exported with TorchScript's exporter
(`dynamo=False`: 0.02 s per model here against 0.8 s for the dynamo exporter, the same graphs on
these models) with a dynamic batch dimension. The check runs a batch through both and compares
the logits: the largest absolute difference, relative to the largest logit, must stay within
`tolerance`. A model that fails to export or disagrees is one line naming the first layer whose
output differs (from a second export that keeps every layer's output, BatchNorm unfused).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from prunebench.errors import briefly
from prunebench.files import atomic_path
from prunebench.pruning.hooks import leaf_calls
from prunebench.training import modelfile

INPUT, OUTPUT = "input", "logits"


def deployable(path: str | Path) -> nn.Module:
    """A saved model as deployment rebuilds it: its own architecture, the masks folded into the
    weights (a masked weight is 0 in the file), eval mode, on the CPU."""
    model, masks, _ = modelfile.load(path)
    with torch.no_grad():
        for name, mask in masks.items():  # keyed by parameter
            weight = model.get_parameter(name)
            weight.mul_(mask.to(weight.dtype))
    return model.eval()


def to_onnx(model: nn.Module, example: Tensor, keep_layers: bool = False) -> bytes:
    """The ONNX bytes of `model` (batch dimension dynamic). `keep_layers`: no constant folding and
    BatchNorm kept apart, so that every layer's output is a node of its own (`first_difference`)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter announces its deprecation
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            buffer,  # type: ignore[arg-type]  # a file object is accepted, as the docs say
            dynamo=False,
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}},
            do_constant_folding=not keep_layers,
            training=torch.onnx.TrainingMode.PRESERVE if keep_layers else torch.onnx.TrainingMode.EVAL,
        )
    return buffer.getvalue()


def export(model: nn.Module, example: Tensor, path: str | Path) -> Path:
    """Write `model` to `path` as ONNX (atomically: nothing half-written after a crash)."""
    data = to_onnx(model, example)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def export_failure(model: nn.Module, x: Tensor, error: Exception) -> str:
    """One line for a model that did not export: the error, and the first layer (in the order the
    forward pass runs them) that does not export on its own with the input it gets."""
    inputs: dict[str, tuple] = {}
    with leaf_calls(model, lambda name, args, _output: inputs.setdefault(name, args)), torch.no_grad():
        model(x)
    modules = dict(model.named_modules())
    message = f"export failed: {briefly(error)}"
    for name, args in inputs.items():
        if len(args) != 1 or not isinstance(args[0], Tensor):
            continue
        try:
            to_onnx(modules[name], *args)
        except Exception:
            return f"{message}; first layer that does not export: {name} ({type(modules[name]).__name__})"
    return message


def session(model: bytes | str | Path, threads: int = 1) -> Any:
    """An ONNX Runtime CPU session on `threads` threads (one, as the stages run torch)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


@dataclass(frozen=True)
class Check:
    problem: str | None  # None when within tolerance; else one line
    max_difference: float | None = None  # largest |ORT − PyTorch| over the batch's logits (None: it did not run)
    scale: float | None = None  # largest |PyTorch logit|
    agreement: float | None = None  # share of examples whose argmax agrees

    def row(self) -> dict[str, Any]:
        """The deploy stage's check columns."""
        return {
            "onnx_max_difference": self.max_difference,
            "onnx_argmax_agreement": self.agreement,
            "onnx_check": self.problem or "ok",
        }


def check(model: nn.Module, onnx_model: bytes | str | Path, x: Tensor, tolerance: float) -> Check:
    """Run `x` through `model` and the exported network (traced on x[:1], as `export` does in the
    deploy stage); the difference of their logits."""
    with torch.no_grad():
        expected = model(x).numpy()
    try:
        got = session(onnx_model).run([OUTPUT], {INPUT: x.numpy()})[0]
    except Exception as error:  # noqa: BLE001 (a file ONNX Runtime cannot load or run is reported, not raised)
        return Check(f"ONNX Runtime cannot run it: {briefly(error)}")
    difference = float(np.abs(got - expected).max())
    scale = float(np.abs(expected).max())
    agreement = float((got.argmax(-1) == expected.argmax(-1)).mean())  # per example, or per token
    problem = None
    if not difference <= tolerance * (1 + scale):
        where = first_difference(model, x, tolerance)
        problem = f"ONNX Runtime's logits differ from PyTorch's by {difference:.3g} (tolerance {tolerance:g}); {where}"
    return Check(problem, difference, scale, agreement)


def first_difference(model: nn.Module, x: Tensor, tolerance: float) -> str:
    """Where the exported network first departs from PyTorch: the first layer (in graph order)
    whose last node's output differs from the PyTorch module's output."""
    import onnx

    outputs: dict[str, list[np.ndarray]] = {}  # copied: in-place operations follow
    with leaf_calls(model, lambda name, _i, out: outputs.setdefault(name, []).append(out.numpy().copy())):
        with torch.no_grad():
            model(x)
    graph = onnx.load_from_string(to_onnx(model, x[:1], keep_layers=True))  # traced as `export` traces
    inferred = onnx.shape_inference.infer_shapes(graph).graph
    known = {v.name: v for v in [*inferred.value_info, *inferred.output]}
    last: dict[tuple[str, int], tuple[int, Any]] = {}  # each module call's last node: its output is the module's
    for position, node in enumerate(inferred.node):
        if (found := _module_call(node.name, outputs)) is not None and node.output[0] in known:
            last[found] = position, node
    nodes = [(node, call) for call, (_, node) in sorted(last.items(), key=lambda item: item[1][0])]
    graph.graph.output.extend(known[node.output[0]] for node, _ in nodes if node.output[0] not in {OUTPUT})
    values = dict(
        zip([o.name for o in graph.graph.output], session(graph.SerializeToString()).run(None, {INPUT: x.numpy()}))
    )
    for node, (name, index) in nodes:
        got, expected = values[node.output[0]], outputs[name][index]
        if got.shape != expected.shape or not np.abs(got - expected).max() <= tolerance * (1 + np.abs(expected).max()):
            return f"first different layer: {name} ({node.op_type})"
    return "no single layer differs beyond the tolerance (the difference accumulates)"


def _module_call(node: str, outputs: dict[str, list]) -> tuple[str, int] | None:
    """The module (and which of its calls) an exported node comes from, by the scope in its name:
    "/block/conv1/Conv" is block.conv1, "/stem/stem.0/Conv" stem.0, "/block/relu_1/Relu" the
    second call of block.relu."""
    scopes = node.strip("/").split("/")[:-1]
    if not scopes:
        return None
    last, call = scopes[-1], 0
    base, _, suffix = last.rpartition("_")
    if base and suffix.isdigit():
        last, call = base, int(suffix)
    for name in (last, ".".join([*scopes[:-1], last])):
        if name in outputs and call < len(outputs[name]):
            return name, call
    return None
