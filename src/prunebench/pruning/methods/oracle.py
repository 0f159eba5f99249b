"""The oracle (Molchanov et al., ICLR 2017): every unit scored by the exact loss change of removing
it on the calibration batches (`pruning.exact`), one ranking over all groups (ΔL is on one scale),
the units whose removal costs least going first. It is the upper reference of the criteria that
estimate ΔL, and their yardstick: with `fidelity` on, every other channel criterion (`criteria`,
each with its default knobs) scores the same model on the same batches, and the table
`criteria_fidelity` gives each one's Spearman ρ with ΔL over all units (what a global ranking
uses), the median of its ρ within each group (what a per-group ranking uses) and its cost in
seconds; the report shows it and draws fidelity against cost."""

from __future__ import annotations

import copy
import statistics
import time
from dataclasses import dataclass
from itertools import islice
from typing import Any

import torch
from torch import Tensor, nn

from prunebench.allowed import Check, boolean, integer, list_of, number, optional
from prunebench.errors import briefly
from prunebench.layouts import FIDELITY_TABLE
from prunebench.pruning.coupling import gate_points, groups
from prunebench.pruning.exact import loss_changes
from prunebench.pruning.methods.base import Context, Method, RankingKnobs, Scored, knob
from prunebench.pruning.methods.registry import METHODS, register
from prunebench.pruning.methods.taylor import activation_bytes, scoring_memory, spearman
from prunebench.pruning.selection import group_scores, member_scores
from prunebench.training.models import Layers, prunable_layers

SKIPPED = ("oracle", "random_channel")  # itself, and a baseline with nothing to be faithful to


def _criterion() -> Check:
    """A registered channel method's name (checked when params.yaml is read: every method has registered by then)."""
    return Check(
        lambda v: isinstance(v, str) and v in METHODS and METHODS[v].unit == "channel",
        "the name of a registered channel method",
        {"type": "string"},
    )


@register("oracle")
class Oracle(Method):
    unit = "channel"
    scope = "global"
    kinds = ("channel", "head")

    @dataclass(frozen=True)
    class Knobs(RankingKnobs):
        normalize: bool = knob(False, boolean())  # ΔL is on one scale in every layer
        max_ratio: float = knob(0.9, number(0, 1))
        batches: int = knob(4, integer(1))  # calibration batches from the training split
        fidelity: bool = knob(True, boolean())  # score every other criterion on the same batches
        criteria: list[str] | None = knob(None, optional(list_of(_criterion())))  # which (null: every channel method)
        memory_mib: int | None = knob(None, optional(integer(1)))  # for the stacked copies (null: `scoring_memory`)

    def score(self, model: nn.Module, layers: Layers, ctx: Context) -> Scored:
        cfg = self.knobs
        points = gate_points(model, ctx.input_shape, self.kinds)
        batches = [(x.to(ctx.device), y.to(ctx.device)) for x, y in islice(ctx.batches(), cfg.batches)]
        memory = scoring_memory(ctx.device) if cfg.memory_mib is None else cfg.memory_mib * 2**20

        def chunk(root: str) -> int:
            return max(1, memory // max(1, activation_bytes(model, [g.module for g in points[root]], batches[0][0])))

        started = time.perf_counter()
        deltas, cached = loss_changes(model, points, batches, chunk=chunk)
        seconds = time.perf_counter() - started
        found = groups(model, ctx.input_shape)
        scores = member_scores(found, deltas)
        metrics = {"oracle_seconds": seconds, "oracle_prefix_cached": float(cached)}
        tables = {}
        if cfg.fidelity:
            rows = [{"criterion": "oracle", "rho_global": 1.0, "rho_layer_median": 1.0, "seconds": seconds}]
            tables[FIDELITY_TABLE] = rows + fidelity(model, found, deltas, batches, ctx, cfg.criteria)
        return Scored(scores, metrics, tables)


def fidelity(
    model: nn.Module,
    found: list,
    deltas: dict[str, Tensor],
    batches: list[tuple[Tensor, Tensor]],
    ctx: Context,
    criteria: list[str] | None,
) -> list[dict]:
    """A row per criterion: Spearman ρ of its unit scores with ΔL over every unit it scores and the
    median over its groups of ρ within a group, and the seconds its scoring took; a criterion that
    refuses the model gets its reason instead."""
    names = criteria if criteria is not None else [n for n, c in METHODS.items() if c.unit == "channel"]
    rows: list[dict[str, Any]] = []
    for name in names:
        if name in SKIPPED:
            continue
        method = METHODS[name]()
        seed = int(torch.randint(2**31, (1,), generator=ctx.generator))
        same = Context(
            lambda: iter(batches), ctx.device, torch.Generator().manual_seed(seed), ctx.input_shape, ctx.sensitivity
        )
        work = copy.deepcopy(model)
        if why := method.refuses(work, same):
            rows.append({"criterion": name, "refused": why})
            continue
        started = time.perf_counter()
        try:
            scored = method.score(work, prunable_layers(work), same)
        except Exception as error:  # a criterion that fails on this model: its row says why
            rows.append({"criterion": name, "refused": briefly(error)})
            continue
        seconds = time.perf_counter() - started
        by_group = group_scores(found, scored.scores)
        common = [root for root in deltas if root in by_group]
        if not common:
            rows.append({"criterion": name, "refused": "it scores none of the units the oracle scores"})
            continue
        within = [spearman(by_group[r], deltas[r]) for r in common if len(deltas[r]) > 2]
        within = [rho for rho in within if rho == rho]  # constant scores in a group have no ρ
        rows.append(
            {
                "criterion": name,
                "rho_global": spearman(
                    torch.cat([by_group[r] for r in common]), torch.cat([deltas[r] for r in common])
                ),
                "rho_layer_median": statistics.median(within) if within else float("nan"),
                "seconds": seconds,
                "units": sum(len(deltas[r]) for r in common),
            }
        )
    return rows
