"""What a model allows, found in seconds: which channel groups are frozen and which methods refuse
it. The check stage and `prunebench check-model` say it before any long stage starts; the prune
stage of a refused method writes its refusal instead of results, and the others run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from prunebench.params import MethodEntry
from prunebench.pruning import methods, surgery
from prunebench.pruning.methods import Context


@dataclass(frozen=True)
class Inspection:
    groups: int  # channel groups that can be cut
    frozen: list[surgery.Frozen] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # method key -> why

    def lines(self) -> list[str]:
        """What to tell the user, a line each."""
        said = [f"channel groups: {self.groups} to prune, {len(self.frozen)} frozen"]
        said += [f"frozen: {group}" for group in self.frozen]
        said += [f"refused: {key}: {why}" for key, why in self.refused.items()]
        return said

    def as_json(self) -> dict[str, Any]:
        return {
            "groups": self.groups,
            "frozen": [{"layers": list(g.members), "label": g.label, "reason": g.reason} for g in self.frozen],
            "refused": self.refused,
        }


def refusal(method: methods.Method, model: nn.Module, ctx: Context, groups: int | None = None) -> str | None:
    """Why `method` cannot prune `model` (None: it can); `groups`: its channel groups that can be
    cut, where the caller has counted them."""
    if method.unit == "channel":
        groups = len(surgery.channel_groups(model, ctx.input_shape)) if groups is None else groups
        if not groups:
            return "every channel group of the model is frozen: no channel can be removed"
    return method.refuses(model, ctx)


def inspect(model: nn.Module, entries: dict[str, MethodEntry], ctx: Context) -> Inspection:
    """The frozen groups of `model` and the methods of `entries` that refuse it."""
    groups = len(surgery.channel_groups(model, ctx.input_shape))
    refused = {
        key: why for key, entry in entries.items() if (why := refusal(methods.create(entry), model, ctx, groups))
    }
    return Inspection(groups, surgery.frozen_groups(model, ctx.input_shape), refused)
