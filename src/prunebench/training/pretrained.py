"""Where the base model starts: freshly initialised, from torchvision's weights, or from the
user's checkpoint (`model.weights`, `model.checkpoint`).

Weights are read offline from torch's hub cache, the file torchvision itself would download
there, so a machine without internet works once the file is in place. Torch files are read with
`weights_only=True` (`surgery.read`), `.safetensors` files hold tensors only: loading weights
never runs code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from prunebench.errors import UserError
from prunebench.params import Model
from prunebench.progress import say
from prunebench.pruning import surgery
from prunebench.training import models


class WeightsError(UserError, ValueError):
    """The weights or checkpoint a `model` section names cannot be had, or do not fit."""


def initial(description: dict) -> nn.Module:
    """The model the base training starts from (with `train.epochs: 0`, the base model itself)."""
    model = models.build(description)
    if description.get("weights"):
        fresh = transfer(model, surgery.read(weights_file(description)))
        say(f"model.weights {description['weights']}: loaded; initialised afresh: {', '.join(fresh) or 'nothing'}")
    if description.get("checkpoint"):
        load_checkpoint(model, Path(description["checkpoint"]))
    return model


def weights_preprocessing(model: Model) -> dict[str, Any] | None:
    """What torchvision's `model.weights` expect of their input (their evaluation transforms):
    mean, std and crop_pct; None without weights."""
    if not model.weights:
        return None
    expected = _weights(model.name, model.weights).transforms()
    crop, resize = expected.crop_size[0], expected.resize_size[0]
    return {"mean": tuple(expected.mean), "std": tuple(expected.std), "crop_pct": crop / resize}


def _weights(name: str, weights: str) -> Any:
    """torchvision's weights entry `weights` of model `name`."""
    from prunebench.training._torchvision import import_torchvision

    try:
        choices = import_torchvision().models.get_model_weights(name)
    except (ValueError, KeyError) as error:
        raise WeightsError(
            f"model.weights = {weights!r}: {name} has no torchvision weights "
            "(use model.checkpoint for a state dict of your own)"
        ) from error
    if weights not in choices.__members__:
        raise WeightsError(f"model.weights = {weights!r}: expected one of {', '.join(choices.__members__)}")
    return choices[weights]


def weights_file(description: dict) -> Path:
    """torchvision's file for `model.weights`, in the hub cache; fetched only with `model.download`."""
    weights = description["weights"]
    url = _weights(description["name"], weights).url
    directory = Path(torch.hub.get_dir()) / "checkpoints"
    file = directory / Path(urlparse(url).path).name
    if not file.is_file():
        if not description.get("download"):
            raise WeightsError(
                f"model.weights = {weights!r}: {file.name} is not in {directory}: put it there "
                f"(from {url}), or set model.download: true on a machine with internet"
            )
        torch.hub.load_state_dict_from_url(url, model_dir=str(directory), map_location="cpu", check_hash=True)
    return file


def transfer(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Copy every tensor whose name and shape fit; the rest (a classifier for other classes, a stem
    adapted to small images or other channels) stay freshly initialised, and are returned."""
    own = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if len(fitting) < len(own) / 2:
        raise WeightsError(
            f"model.weights: only {len(fitting)} of the model's {len(own)} tensors fit the file: "
            "weights of another architecture?"
        )
    model.load_state_dict(fitting, strict=False)
    return [k for k in own if k not in fitting and not k.endswith("num_batches_tracked")]


WRAPPERS = ("state_dict", "model_state_dict", "model", "net", "network")  # where training scripts keep it
PREFIXES = ("module.", "_orig_mod.")  # DataParallel / DistributedDataParallel; torch.compile


def load_checkpoint(model: nn.Module, path: Path) -> None:
    """A state dict of exactly this architecture, as other code bases save it: under a wrapper key
    next to an epoch or an optimiser, with DataParallel's or torch.compile's prefix, without the
    BatchNorm batch counters of files older than PyTorch 0.4.1, or as `.safetensors`. What was
    adapted is said in one line; what does not fit stays one line naming the first keys or shape."""
    state, adapted = _state_dict(path)
    own = model.state_dict()
    counters = [k for k in own if k.endswith("num_batches_tracked") and k not in state]
    if counters:  # PyTorch's own load_state_dict fills them in for such files
        state |= {k: own[k] for k in counters}
        adapted.append(f"num_batches_tracked absent from {len(counters)} BatchNorm layers (set to 0)")
    missing, unexpected = [k for k in own if k not in state], [k for k in state if k not in own]
    if missing or unexpected:
        raise WeightsError(
            f"model.checkpoint: {path} does not fit model {model.__class__.__name__}: "
            f"missing {_first(missing)}; unexpected {_first(unexpected)}"
        )
    wrong = next((k for k in own if own[k].shape != state[k].shape), None)
    if wrong is not None:
        raise WeightsError(
            f"model.checkpoint: {path}: {wrong} has shape {tuple(state[wrong].shape)}, "
            f"the model's is {tuple(own[wrong].shape)}"
        )
    model.load_state_dict(state)
    say(f"model.checkpoint {path}: loaded {len(own)} tensors" + (f"; adapted: {'; '.join(adapted)}" if adapted else ""))


def _state_dict(path: Path) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The file's name → tensor mapping, unwrapped and without a prefix every key shares, and
    what was done to get it."""
    state: Any = _read_safetensors(path) if path.suffix == ".safetensors" else surgery.read(path)
    adapted = []
    if isinstance(state, dict) and not _is_state(state):
        wrapper = next((k for k in WRAPPERS if isinstance(state.get(k), dict) and _is_state(state[k])), None)
        if wrapper is not None:
            others = [k for k in state if k != wrapper]
            state = state[wrapper]
            adapted.append(f"the state dict under {wrapper!r}" + (f" (beside {_first(others)})" if others else ""))
    if not isinstance(state, dict) or not state or not _is_state(state):
        raise WeightsError(
            f"model.checkpoint: {path} holds no state dict (name → tensor), nor one under {', '.join(WRAPPERS)}"
        )
    stripped = True
    while stripped:
        stripped = False
        for prefix in PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix) :]: v for k, v in state.items()}
                adapted.append(f"prefix {prefix!r} stripped")
                stripped = True
    return dict(state), adapted


def _is_state(value: dict) -> bool:
    return bool(value) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """A .safetensors file: tensors only, by construction (no pickle)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise surgery.ModelFileError(f"{path}: no such file")
    try:
        return load_file(path, device="cpu")
    except (SafetensorError, OSError) as error:
        raise surgery.ModelFileError(f"{path}: unreadable or not a safetensors file ({error})") from error


def _first(keys: list[str], shown: int = 3) -> str:
    return (
        "none"
        if not keys
        else ", ".join(keys[:shown]) + (f" and {len(keys) - shown} more" if len(keys) > shown else "")
    )
