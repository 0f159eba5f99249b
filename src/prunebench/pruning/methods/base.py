"""The one small interface every pruning method implements.

A method scores units and returns what it found (`Scored`); what to do with the scores (masks
for weights, physical removal for channels, one-shot or iterative) is shared machinery in
`prunebench.pruning.selection`. A method's knobs are a frozen dataclass (`Knobs`): each field declares
its default and its check once, params.yaml `methods.<key>` may override it, and the machinery
reads the shared ones as typed attributes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from prunebench.allowed import Check, boolean, integer, list_of, number, one_of, optional, setting
from prunebench.pruning.coupling import KINDS
from prunebench.training.models import Layers


@dataclass
class Context:
    """What a method may use besides the model."""

    batches: Callable[[], Iterable[tuple[Tensor, Tensor]]]  # calibration batches, training split
    device: torch.device
    generator: torch.Generator  # the only source of randomness a method may use
    input_shape: tuple[int, ...] = ()
    sensitivity: list[dict] = field(default_factory=list)  # this seed's rows of the sensitivity stage

    def examples(self, count: int) -> list[tuple[Tensor, Tensor]]:
        """The first `count` calibration examples (inputs, labels), in batches, on the device."""
        taken, found = 0, []
        for x, y in self.batches():
            x, y = x[: count - taken].to(self.device), y if y is None else y[: count - taken].to(self.device)
            found.append((x, y))
            taken += len(x)
            if taken >= count:
                break
        return found


def knob(default: Any, check: Check) -> Any:
    """A knob of a method: its default and what params.yaml may set it to."""
    return setting(check, default)


@dataclass(frozen=True)
class Knobs:
    """A method's knobs; subclasses add fields made with `knob` (`allowed.checks` lists them)."""


@dataclass(frozen=True)
class ChannelKnobs(Knobs):
    """Read by the machinery for every channel method."""

    round_to: int | None = knob(None, optional(integer(1)))  # kept channels: a multiple of this (rounded down)
    # the kinds of groups it prunes, of those it scores (null: all of them), e.g. [head] to cut heads alone
    kinds: list[str] | None = knob(None, optional(list_of(one_of(*KINDS))))


PATTERNS = ("unstructured", "2:4", "4:8")  # how the LLM methods choose a row's weights (`pruning.rows`)


@dataclass(frozen=True)
class RowKnobs(Knobs):
    """Read by the methods that choose weights per output row (`pruning.rows`)."""

    pattern: str = knob("unstructured", one_of(*PATTERNS))  # unstructured, or N:M along each row's inputs


@dataclass(frozen=True)
class CalibratedKnobs(RowKnobs):
    calibration: int = knob(128, integer(1))  # training examples (sequences) each layer is calibrated on


@dataclass(frozen=True)
class RankingKnobs(ChannelKnobs):
    """Read by the machinery for a channel method that ranks all layers' channels at once."""

    normalize: bool = knob(True, boolean())  # divide each layer's scores by their L2 norm before ranking
    min_channels: int = knob(1, integer(1))  # channels every layer keeps
    max_ratio: float = knob(1.0, number(0, 1))  # the largest fraction of one layer that may go


@dataclass
class Scored:
    """What one scoring found: importance per unit (higher = keep), and what the method reports.

    `scores`: for unit "weight" a tensor shaped like each layer's weight (or a coarser one, e.g.
    one per kernel), for unit "channel" one value per output channel. `metrics`: small numbers,
    e.g. {"taylor_fidelity": {"order1": 0.9}}; `tables`: named rows, which the report plots
    (`method_plots.TABLE_PLOTS`); `state`: whatever `adjust` needs from the scoring."""

    scores: dict[str, Tensor]
    metrics: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, list[dict]] = field(default_factory=dict)
    state: Any = None


class Method(ABC):
    unit: ClassVar[Literal["weight", "channel"]]
    # "layer": every prunable layer loses `ratio` of its units; "global": one ranking over all
    scope: Literal["layer", "global"] = "layer"
    # how `ratio` is reached unless params.yaml `methods.<key>.schedule` says otherwise:
    # "steps" (schedule.iterations) or "retention" (schedule.retention, unit "channel" only)
    schedule: ClassVar[Literal["steps", "retention"]] = "steps"
    # unit "channel": the kinds of groups it scores (`coupling.Group`; the knob `kinds` may narrow them);
    # the others stay whole
    kinds: tuple[str, ...] = ("channel", "width", "head")
    Knobs: ClassVar[type[Knobs]] = Knobs

    def __init__(self, knobs: Any = None):
        # Any: each method reads the fields of its own `Knobs` subclass, and the machinery those of
        # `ChannelKnobs` / `RankingKnobs`, which `prunebench.schema` checked against the class
        self.knobs: Any = knobs if knobs is not None else self.Knobs()
        chosen = getattr(self.knobs, "kinds", None)
        if chosen is not None:
            self.kinds = tuple(kind for kind in type(self).kinds if kind in chosen)

    def refuses(self, model: nn.Module, ctx: Context) -> str | None:
        """Why this method cannot prune `model`, found in seconds, before any long stage (None: it
        can); what `score` would raise as `Unsupported` later."""
        return None

    @abstractmethod
    def score(self, model: nn.Module, layers: Layers, ctx: Context) -> Scored:
        """Importance of every unit of the prunable `layers` (see `Scored`)."""

    def layer_ratios(self, layers: Layers, target: float, ctx: Context) -> dict[str, float] | None:
        """Fraction to remove per layer (for channels: per channel-group root), or None to
        remove `target` everywhere ("layer" scope) or by one ranking ("global")."""
        return None

    def weight_masks(self, layers: Layers, scored: Scored, target: float, ctx: Context) -> dict[str, Tensor] | None:
        """Keep-masks of a method that chooses weights by a rule other than a ranking (e.g. a
        pattern per kernel), or None to keep the highest-scoring weights."""
        return None

    def adjust(
        self, model: nn.Module, layers: Layers, keep: dict[str, Tensor], ctx: Context, scored: Scored
    ) -> dict[str, float]:
        """Change the kept weights once the units to remove are chosen, before they go (e.g. merge
        each pruned weight into a kept one); returns metrics of what it did. `keep` (True = keep)
        is keyed by parameter and shaped like it for unit "weight", and keyed by layer with one
        entry per output channel for unit "channel"."""
        return {}
