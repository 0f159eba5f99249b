"""Where the base model starts: freshly initialised, from its family's pretrained weights, or
from the user's checkpoint (`model.weights`, `model.checkpoint`).

Weights are read offline, from where the family keeps them (torchvision's: torch's hub cache,
the file torchvision itself would download there; timm's: a local copy of the Hub's file).
Torch files are read with `weights_only=True` (`torchfile.read`), `.safetensors` files hold
tensors only: loading weights never runs code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunebench.params import Model
from prunebench.progress import say
from prunebench.training import models, torchfile
from prunebench.training.models import WeightsError


def initial(description: dict) -> nn.Module:
    """The model the base training starts from (with `train.epochs: 0`, the base model itself):
    the family's model with its weights loaded as the factory built it, then adapted
    (`models.adapt`), as every model file is rebuilt."""
    family = models.family(description["name"])
    model = family.create(description)
    if description.get("weights"):
        if family.pretrained is None:
            raise WeightsError(
                f"model.weights = {description['weights']!r}: {family.name} has no pretrained weights "
                "(use model.checkpoint for a state dict of your own)"
            )
        fresh = transfer(model, family.pretrained.state(description, model))
        say(f"model.weights {description['weights']}: loaded; initialised afresh: {', '.join(fresh) or 'nothing'}")
    if description.get("checkpoint"):
        load_checkpoint(model, Path(description["checkpoint"]))
    return models.adapt(model)


def weights_preprocessing(model: Model) -> dict[str, Any] | None:
    """What the family's pretrained weights (`model.weights`) expect of their input: mean, std,
    crop_pct and interpolation; None without weights."""
    family = models.family(model.name)
    return family.pretrained.preprocessing(model.as_dict()) if family.pretrained else None


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
    state: Any = torchfile.read_weights(path)
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


def _first(keys: list[str], shown: int = 3) -> str:
    return (
        "none"
        if not keys
        else ", ".join(keys[:shown]) + (f" and {len(keys) - shown} more" if len(keys) > shown else "")
    )
