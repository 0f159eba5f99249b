"""A model family: the one record of a kind of model that `model.name` names.

A family carries its factory (called with the data set's shape, `in_channels`, `num_classes` and
`image_size`, where its signature takes them, plus every other key of the `model` section), where
its pretrained weights come from and what input they expect (`Pretrained`), and what pruning needs
to know beyond the graph (`Hints`). Families register themselves where they are defined
(`@register("name")` on the factory); a prefix names a family of families (`timm:<name>`), and
`package.module:function` is the user's own factory, imported from the repository root.

A built model carries its family's name (`FAMILY`), so that pruning reads the hints of the model
it is given.
"""

from __future__ import annotations

import importlib
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from prunebench import repository
from prunebench.errors import UserError
from prunebench.params import MODEL_START
from prunebench.registry import Registry
from prunebench.task import CLASSIFICATION, LANGUAGE_MODELLING
from prunebench.training.models.transformer import Heads, packed_heads

SHAPE = ("in_channels", "num_classes", "image_size", "vocab_size", "sequence_length")  # what the data set fixes
FAMILY = "prunebench_family"  # the attribute a built model carries: its family's name


class ModelError(UserError, ValueError):
    """`model.name` names no model, or its factory does not build one."""


class WeightsError(UserError, ValueError):
    """The weights or checkpoint a `model` section names cannot be had, or do not fit."""


@dataclass(frozen=True)
class Hints:
    """What pruning needs to know of a family that its graph does not say."""

    # parameters that live outside modules (a class token, a position embedding): name → the
    # dimension that holds the embedding's channels (torch-pruning's default: the last one)
    unwrapped: dict[str, int] = field(default_factory=dict)
    # layers no method touches besides the output layer (fnmatch patterns of their names)
    never_pruned: tuple[str, ...] = ()
    # an attention module's heads, or None for any other module
    heads: Callable[[nn.Module], Heads | None] = packed_heads


class Pretrained(ABC):
    """Where a family's pretrained weights come from (`model.weights`), and the input they expect."""

    @abstractmethod
    def state(self, description: dict[str, Any], model: nn.Module) -> dict[str, Tensor]:
        """The weights `model.weights` names, read offline and fitted to `model` where the family
        knows how; a missing file is one `WeightsError` line."""

    @abstractmethod
    def preprocessing(self, description: dict[str, Any]) -> dict[str, Any] | None:
        """What the weights expect of their input (mean, std, crop_pct, interpolation), or None
        where the model starts without them."""


@dataclass(frozen=True)
class Family:
    name: str
    factory: Callable[..., nn.Module]
    pretrained: Pretrained | None = None
    hints: Hints = Hints()

    @property
    def task(self) -> str:
        """What the family's models do: language modelling where the factory takes a vocabulary
        size (`vocab_size`), else classification."""
        takes = inspect.signature(self.factory).parameters
        return LANGUAGE_MODELLING if "vocab_size" in takes else CLASSIFICATION

    def create(self, description: dict[str, Any]) -> nn.Module:
        """The factory's model, freshly initialised, tagged with the family."""
        model = self.factory(**arguments(self.factory, description))
        if not isinstance(model, nn.Module):
            raise ModelError(f"model.name = {self.name!r}: returned {type(model).__name__}, not an nn.Module")
        setattr(model, FAMILY, self.name)
        return model


MODELS: Registry[Family] = Registry("model.name")
PREFIXES: Registry[Callable[[str], Family]] = Registry("model.name")  # "timm" → the family of timm:<name>


def register(
    name: str, pretrained: Pretrained | None = None, hints: Hints = Hints()
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a factory as the family `name`."""

    def add(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        MODELS.register(name)(Family(name, factory, pretrained, hints))
        return factory

    return add


def family(name: str) -> Family:
    """The family `model.name` names: a registered one, a prefixed one (`timm:<name>`), or the
    user's `package.module:function`."""
    if name in MODELS:
        return MODELS[name]
    prefix, _, rest = name.partition(":")
    if rest and prefix in PREFIXES:
        return PREFIXES[prefix](rest)
    if not rest:
        raise ModelError(
            f"model.name = {name!r}: expected one of {', '.join(MODELS)}, "
            f"{', '.join(f'{p}:<name>' for p in PREFIXES)}, or package.module:function"
        )
    try:
        with repository.on_path():
            factory = getattr(importlib.import_module(prefix), rest)
    except (ImportError, AttributeError) as error:
        raise ModelError(f"model.name = {name!r}: cannot import it from the repository root ({error})") from error
    return Family(name, factory)


def hints_of(model: nn.Module) -> Hints:
    """The hints of the family a model was built as (none for a model built elsewhere)."""
    name = getattr(model, FAMILY, None)
    return family(name).hints if name else Hints()


def spec(section: dict, *image: int, **shape: int) -> dict:
    """Plain-data description of a model: the params.yaml `model` section (as plain data) plus the
    data's shape: an image model's (in_channels, num_classes, image_size) in that order, or any
    shape by name (`Splits.factory_shape`: a language model's vocab_size and sequence_length)."""
    return {**section, **dict(zip(SHAPE, image, strict=False)), **shape}


def arguments(fn: Callable[..., nn.Module], description: dict) -> dict:
    """What the factory is called with: the data set's shape where it takes it, and every other
    architecture key of the `model` section."""
    parameters = inspect.signature(fn).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    return {
        k: v
        for k, v in description.items()
        if k != "name" and k not in MODEL_START and (k not in SHAPE or takes_any or k in parameters)
    }


def knobs(fn: Callable[..., nn.Module]) -> tuple[list[str], bool]:
    """The factory's own keyword arguments, and whether it takes any other (`**kwargs`)."""
    parameters = inspect.signature(fn).parameters
    own = [p for p, v in parameters.items() if p not in SHAPE and v.kind is not v.VAR_KEYWORD]
    return own, any(v.kind is v.VAR_KEYWORD for v in parameters.values())
