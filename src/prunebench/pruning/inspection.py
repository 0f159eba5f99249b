"""What a model allows, found in seconds: which channel groups are frozen and which methods refuse
it. The check stage and `prunebench check-model` say it before any long stage starts; the prune
stage of a refused method writes its refusal instead of results, and the others run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from prunebench.params import MethodEntry
from prunebench.pruning import coupling, methods
from prunebench.pruning.methods import Context


@dataclass(frozen=True)
class Inspection:
    groups: int  # groups that can be cut (channels, the width, heads)
    frozen: list[coupling.Frozen] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # method key -> why
    kinds: dict[str, int] = field(default_factory=dict)  # groups that can be cut, per kind
    batchnorm: bool = True  # whether recalibration has BatchNorm statistics to re-estimate

    def lines(self) -> list[str]:
        """What to tell the user, a line each."""
        others = ", ".join(f"{count} {kind}" for kind, count in self.kinds.items() if kind != "channel")
        said = [f"channel groups: {self.groups} to prune{f' ({others})' if others else ''}, {len(self.frozen)} frozen"]
        said += [f"frozen: {group}" for group in self.frozen]
        said += [f"refused: {key}: {why}" for key, why in self.refused.items()]
        return said

    def as_json(self) -> dict[str, Any]:
        return {
            "groups": self.groups,
            "kinds": self.kinds,
            "batchnorm": self.batchnorm,
            "frozen": [{"layers": list(g.members), "label": g.label, "reason": g.reason} for g in self.frozen],
            "refused": self.refused,
        }


def refusal(
    method: methods.Method, model: nn.Module, ctx: Context, found: list[coupling.Group] | None = None
) -> str | None:
    """Why `method` cannot prune `model` (None: it can); `found`: the model's groups, where the
    caller has them."""
    if method.unit == "channel":
        found = coupling.groups(model, ctx.input_shape) if found is None else found
        if not any(group.kind in method.kinds for group in found):
            return f"no group of the model that it scores ({', '.join(method.kinds)}) can be cut"
    return method.refuses(model, ctx)


def inspect(model: nn.Module, entries: dict[str, MethodEntry], ctx: Context) -> Inspection:
    """The groups and frozen groups of `model`, and the methods of `entries` that refuse it."""
    found = coupling.groups(model, ctx.input_shape)
    kinds = {kind: sum(group.kind == kind for group in found) for kind in coupling.KINDS}
    refused = {key: why for key, entry in entries.items() if (why := refusal(methods.create(entry), model, ctx, found))}
    frozen = coupling.frozen_groups(model, ctx.input_shape)
    batchnorm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    return Inspection(len(found), frozen, refused, {kind: count for kind, count in kinds.items() if count}, batchnorm)
