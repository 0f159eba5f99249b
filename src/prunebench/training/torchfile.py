"""Reading a torch file without running code from it: tensors and plain data only
(`weights_only=True`); a file that holds pickled Python objects is refused, a truncated or unreadable
one is one line."""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import torch

from prunebench.errors import UserError


class ModelFileError(UserError, ValueError):
    """A model file that is missing, unreadable, or holds pickled Python objects (refused)."""


def read(path: str | Path | bytes) -> Any:
    """A torch file's tensors and plain data (or a file's bytes, as jobs return them)."""
    name = describe(path)
    if isinstance(path, bytes):
        source: Any = io.BytesIO(path)
    elif not Path(path).is_file():
        raise ModelFileError(f"{name}: no such file")
    else:
        source = path
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ModelFileError(
            f"{name}: refused: it holds pickled Python objects, not plain weights "
            "(prunebench loads models with weights_only=True)"
        ) from error
    except (RuntimeError, EOFError, OSError) as error:
        raise ModelFileError(
            f"{name}: unreadable, truncated or not a torch file "
            f"({str(error).splitlines()[0] if str(error) else type(error).__name__})"
        ) from error


def describe(path: str | Path | bytes) -> str | Path:
    """How an error names a file: its path, or where bytes came from."""
    return "a model returned by a job" if isinstance(path, bytes) else path


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """A .safetensors file: tensors only, by construction (no pickle)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise ModelFileError(f"{path}: no such file")
    try:
        return load_file(path, device="cpu")
    except (SafetensorError, OSError) as error:
        raise ModelFileError(f"{path}: unreadable or not a safetensors file ({error})") from error


def read_weights(path: Path) -> Any:
    """A weights file in either format: `.safetensors`, or a torch file."""
    return read_safetensors(path) if path.suffix == ".safetensors" else read(path)
