"""The one small interface every pruning method implements.

A method only scores units; what to do with the scores (masks for weights, physical removal
for channels, one-shot or iterative) is shared machinery in `prunebench.pruning`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from prunebench.spec import Check


@dataclass
class Context:
    """What a method may use besides the model."""

    batches: Callable[[], Iterable[tuple[Tensor, Tensor]]]  # calibration batches, training split
    device: torch.device
    generator: torch.Generator  # the only source of randomness a method may use
    input_shape: tuple[int, ...] = ()
    sensitivity: list[dict] = field(default_factory=list)  # this seed's rows of the sensitivity stage


class Method(ABC):
    unit: ClassVar[Literal["weight", "channel"]]
    # "layer": every prunable layer loses `ratio` of its units; "global": one ranking over all
    scope: ClassVar[Literal["layer", "global"]] = "layer"
    # how `ratio` is reached unless params.yaml `methods.<key>.schedule` says otherwise:
    # "steps" (schedule.iterations) or "retention" (schedule.retention, unit "channel" only)
    schedule: ClassVar[Literal["steps", "retention"]] = "steps"
    # knob name -> (default, check); params.yaml `methods.<key>` may override each one
    knobs: ClassVar[dict[str, tuple[Any, Check]]] = {}

    def __init__(self, **overrides: Any):
        self.config = {name: default for name, (default, _) in self.knobs.items()} | overrides
        # what the last `scores` call found besides the scores, for the method's metrics and plots
        self.metrics: dict[str, Any] = {}  # small numbers, e.g. {"taylor_fidelity": {"order1": 0.9}}
        self.tables: dict[str, list[dict]] = {}  # rows, e.g. {"fidelity": [...]}; report.py plots known names

    @abstractmethod
    def scores(self, model: nn.Module, layers: dict[str, nn.Module], ctx: Context) -> dict[str, Tensor]:
        """Importance per unit, higher = keep: for unit "weight" a tensor shaped like each
        layer's weight, for unit "channel" one value per output channel."""

    def adjust(self, model: nn.Module, layers: dict[str, nn.Module], masks: dict[str, Tensor], ctx: Context) -> None:
        """Change the kept weights once the units to remove are chosen, before they go: e.g. merge
        each pruned weight into a kept one. `masks` (True = keep) are keyed by parameter and shaped
        like it for unit "weight"; for unit "channel" they are keyed by layer, one per output
        channel (passed by the retention schedule, which chooses the channels itself)."""

    def layer_ratios(self, model: nn.Module, layers: dict[str, nn.Module], target: float,
                     ctx: Context) -> dict[str, float] | None:
        """Fraction to remove per layer (for channels: per channel-group root), or None to
        remove `target` everywhere ("layer" scope) or by one ranking ("global")."""
        return None
