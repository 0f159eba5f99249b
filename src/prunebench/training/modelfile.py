"""Model files: a (pruned) model's weights plus a plain-data description of its architecture.

Loading rebuilds the architecture from the description (`models.build`), gives every layer the
sizes it had when saved (channels, features, normalised shape, heads) and reads the file with
`weights_only=True` (`torchfile.read`), so a file can never run code. Jobs return a model file's
bytes (`dumps`); the stage writes them (`save`).
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from prunebench.files import save_bytes
from prunebench.training import models
from prunebench.training.torchfile import ModelFileError, describe, read

FORMAT = "prunebench-model/1"
# the sizes pruning can change, as module attributes: layers' channels and features, a LayerNorm's
# shape, an attention module's heads and their width
SIZE_ATTRS = (
    "in_channels",
    "out_channels",
    "groups",
    "in_features",
    "out_features",
    "num_features",
    "normalized_shape",
    "num_heads",
    "head_dim",
    "attn_dim",
    "split_size",  # GPT-2's attention width (Hugging Face)
)


def architecture(model: nn.Module) -> dict[str, dict[str, Any]]:
    """The sizes that pruning can change, as plain data: integers, or tuples of them."""
    layers = {}
    for name, module in model.named_modules():
        sizes = {a: value for a in SIZE_ATTRS if _size(value := getattr(module, a, None))}
        if sizes:
            layers[name] = sizes
    return layers


def _size(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, tuple) and all(isinstance(v, int) for v in value)
    )


def dumps(model: nn.Module, spec: dict[str, Any], masks: dict[str, Tensor] | None = None) -> bytes:
    """A model file's bytes. `spec` is the model description `models.build` takes; `masks`
    keeps unstructured pruning."""
    payload = _interned(
        {
            "format": FORMAT,
            "spec": spec,
            "layers": architecture(model),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "masks": {k: v.cpu() for k, v in (masks or {}).items()},
        }
    )
    buffer = io.BytesIO()  # a file object: the archive is named "archive", not after a file, so the
    torch.save(payload, buffer)  # same model gives the same bytes and DVC re-runs nothing
    return buffer.getvalue()


def _interned(value: Any) -> Any:
    """`value` with every string interned: pickle writes a string it has seen as a reference, so
    without this the bytes would depend on which equal strings happen to be one object (a spec
    that came through Ray, unpickled, has fresh ones) rather than on the values alone."""
    if isinstance(value, str):
        return sys.intern(value)
    if isinstance(value, dict):
        return {_interned(k): _interned(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_interned(v) for v in value)
    return value


def save(path: str | Path, model: nn.Module, spec: dict[str, Any], masks: dict[str, Tensor] | None = None) -> None:
    save_bytes(path, dumps(model, spec, masks))


def load(path: str | Path | bytes) -> tuple[nn.Module, dict[str, Tensor], dict[str, Any]]:
    """Rebuild a saved model (a file, or its bytes) on the CPU: (model, masks, spec)."""
    payload = read(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFileError(f"{describe(path)}: not a prunebench model file (expected format {FORMAT})")
    model = models.build(payload["spec"])
    _resize(model, payload["layers"], payload["state_dict"])
    model.load_state_dict(payload["state_dict"])
    return models.retie(model), payload["masks"], payload["spec"]


def load_pruned(path: str | Path) -> nn.Module:
    """The deployment entry point: a saved (pruned) model, rebuilt and ready for inference."""
    return load(path)[0].eval()


def _resize(model: nn.Module, layers: dict[str, dict[str, Any]], state: dict[str, Tensor]) -> None:
    """Give every layer the sizes and tensor shapes it had when saved (tied weights come apart
    here: `load` ties them again)."""
    modules = dict(model.named_modules())
    for name, sizes in layers.items():
        for attr, value in sizes.items():
            setattr(modules[name], attr, value)
    for key, tensor in state.items():
        owner, _, attr = key.rpartition(".")
        module = modules[owner]
        if attr in module._parameters:
            module._parameters[attr] = nn.Parameter(torch.empty_like(tensor))
        elif attr in module._buffers:
            module._buffers[attr] = torch.empty_like(tensor)
