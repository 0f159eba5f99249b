"""Taylor filter ranking of order 1, 2 or 3, with the derivatives computed exactly.

Every prunable unit c (a channel, a neuron, an attention head) gets a gate m_c = 1 where its
signal leaves its layer (`coupling.gate_points`; coupled layers share a gate, a head's gate scales
its slice of the output projection's input). The embedding width of a transformer is not gated:
its units also pass LayerNorms and enter through a class token and a position embedding, so no
single gate removes one (Taylor keeps it whole). Removing the channel moves m_c to 0, so
the loss change is ΔL_c = L(m_c = 0) − L(m_c = 1), whose Taylor estimate of order k is
Σ_{j=1..k} (−1)^j / j! · ∂^j L / ∂m_c^j. The derivatives are exact, averaged over `batches`
calibration batches, model in eval mode. Order 1 takes one backward pass per batch for every
gate at once. Orders 2 and 3 need each channel's own direction: nested forward-mode automatic
differentiation (torch.func.jvp) along each gate direction, vmapped over a group's channels in
chunks as large as a memory budget allows (`plan`; the batch in pieces where one direction of
it would not fit), the loss (a mean over examples) functionalised
(`torch.func.functionalize`) so that in-place operations in the model (ReLU(inplace=True),
torchvision's `out += identity`) do not write into forward-mode tangents. Channels are ranked
globally by |estimate|.

Published "higher-order" variants used squared-gradient proxies instead; here the fidelity of
each order is measured against the exact ΔL (`pruning.exact`) on a sample of channels.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.func import functionalize, jvp, vmap

from prunebench.allowed import boolean, integer, one_of, optional
from prunebench.errors import briefly
from prunebench.pruning.coupling import gate_points, groups
from prunebench.pruning.exact import Traced, loss_changes, traced_model
from prunebench.pruning.hooks import Points, gated, leaf_calls, ones, signal_grads, unit_count
from prunebench.pruning.methods.base import Context, Method, RankingKnobs, Scored, knob
from prunebench.pruning.methods.registry import register
from prunebench.pruning.selection import member_scores
from prunebench.training.loops import cross_entropy
from prunebench.training.models import Layers
from prunebench.training.models.transformer import differentiable_attention

Loss = Callable[[Tensor, Tensor], Tensor]
Prefix = tuple[Traced, dict]  # the traced model and the values it recorded for one input
Batches = list[tuple[Tensor, Tensor]]


def _derivatives(f: Callable[[Tensor], Tensor], s: Tensor, v: Tensor, k: int) -> tuple[Tensor, ...]:
    """(f(s), f'(s), …, f^(k)(s)) along direction v, by k nested jvps."""
    if k == 0:
        return (f(s),)
    primal, tangent = jvp(lambda t: _derivatives(f, t, v, k - 1), (s,), (v,))[:2]
    return primal + (tangent[-1],)


def _loss(
    model: nn.Module, root: str, points: Points, x: Tensor, y: Tensor, loss_fn: Loss, prefix: Prefix | None = None
):
    """The loss as a function of the deviation s of one group's gates from 1, without in-place
    writes; with a `prefix` (the traced model and its recorded values for x), only what depends on
    the gates runs."""

    def loss(s: Tensor) -> Tensor:
        with differentiable_attention():
            if prefix is not None:
                traced, kept = prefix
                return traced.losses(kept, root, (1 + s).unsqueeze(0), y, loss_fn)[0]
            with gated(model, points, {root: 1 + s}):
                return loss_fn(model(x), y)

    return functionalize(loss)


def gate_derivatives(
    model: nn.Module,
    points: Points,
    batches: Batches,
    order: int,
    loss_fn: Loss = cross_entropy,
    memory: int | None = None,
    prefix: bool = True,
) -> dict[str, Tensor]:
    """∂^j L / ∂m_c^j at m = 1 for j = 1..order, per group root: a tensor [order, channels],
    averaged over the batches. `memory`: bytes the vmapped directions of orders 2 and 3 may
    take at once (None: `scoring_memory`). `prefix`: orders 2 and 3 run only what depends on each
    group's gates where fx traces the model (`pruning.exact.Traced`)."""
    model.eval()
    if order == 1:
        return _gradients(model, points, batches, loss_fn)
    device = next(model.parameters()).device
    memory = scoring_memory(device) if memory is None else memory
    first = (batches[0][0].to(device), batches[0][1].to(device))
    traced = traced_model(model, points, first, loss_fn) if prefix else None
    result = {}
    for root, group_points in points.items():
        rows, chunk = plan(model, [gate.module for gate in group_points], batches[0][0].to(device), order, memory)
        directions = torch.eye(unit_count(points, root), device=device)
        total: Tensor | None = None
        for x, y in batches:
            for xs, ys in zip(x.to(device).split(rows), y.to(device).split(rows)):  # the mean loss: a weighted sum
                cached = (traced, traced.record(xs)) if traced is not None else None
                loss = _loss(model, root, {root: group_points}, xs, ys, loss_fn, cached)
                values = along(loss, directions, order, chunk) * (len(xs) / len(x))
                total = values if total is None else total + values
        assert total is not None, "at least one batch"
        result[root] = total / len(batches)
    return result


def along(loss: Callable[[Tensor], Tensor], directions: Tensor, order: int, chunk: int) -> Tensor:
    """Derivatives 1..order of `loss` at 0 along each row of `directions`, `chunk` rows at a time:
    [order, rows]. Each chunk's result is detached at once: vmap's own chunk_size keeps every
    chunk's forward-mode intermediates alive until it concatenates them."""
    zero = torch.zeros(directions.shape[1], device=directions.device)
    derivatives = vmap(lambda v: torch.stack(_derivatives(loss, zero, v, order)[1:]))
    return torch.cat([derivatives(part).detach() for part in directions.split(chunk)]).T


def _gradients(model: nn.Module, points: Points, batches: Batches, loss_fn: Loss) -> dict[str, Tensor]:
    """∂L/∂m_c of every gate from one backward pass per batch: [1, units] per group root."""
    device = next(model.parameters()).device
    gates = ones(points, device, requires_grad=True)
    for x, y in batches:
        with gated(model, points, gates):
            loss_fn(model(x.to(device)), y.to(device)).backward()
    model.zero_grad(set_to_none=True)
    return {root: cast(Tensor, gate.grad).detach().unsqueeze(0) / len(batches) for root, gate in gates.items()}


# Bytes one vmapped gate direction holds, in multiples of the activations after its gate
# (`activation_bytes`). Measured peak memory of a chunk of c directions on resnet20, resnet56 and
# resnet18 at 32×32 (benchmarks/README.md): about 1-15× plus 2-18× per direction at order 3 and
# 1× plus 2-4× per direction at order 2. A chunk of c is taken to hold c + 1 directions.
DIRECTION_BYTES = {2: 5, 3: 20}


def activation_bytes(model: nn.Module, group_points: list[str], x: Tensor) -> int:
    """Bytes of the outputs of every leaf module from the group's first gate point on, in one
    forward pass of x: what the tangents of one direction take per derivative component."""
    sizes: list[tuple[str, int]] = []

    def record(name: str, _inputs: tuple, output: Any) -> None:
        if isinstance(output, Tensor):
            sizes.append((name, output.numel() * output.element_size()))

    with leaf_calls(model, record, also=group_points), torch.no_grad():
        model(x)
    start = next(i for i, (name, _) in enumerate(sizes) if name in group_points)
    return sum(size for _, size in sizes[start:])


def plan(model: nn.Module, group_points: list[str], x: Tensor, order: int, memory: int) -> tuple[int, int]:
    """(examples per piece of a batch, gate directions per chunk) of one group that fit in
    `memory` bytes at once. The batch is split only where one direction of the whole batch does
    not fit: the loss is a mean over examples (in eval mode each example is on its own), so the
    derivatives are the pieces' derivatives weighted by their share of the batch."""
    per_direction = DIRECTION_BYTES[order] * activation_bytes(model, group_points, x)
    rows = len(x) if memory >= 2 * per_direction else max(1, len(x) * memory // (2 * per_direction))
    return rows, max(1, memory * len(x) // (per_direction * rows) - 1)


MEMORY_SHARE = 0.25  # of the free memory that the derivative chunks may take


def scoring_memory(device: torch.device) -> int:
    """MEMORY_SHARE of the device's free memory; on the CPU divided among the worker processes
    that may score side by side (one per core)."""
    if device.type == "cuda":
        return int(MEMORY_SHARE * torch.cuda.mem_get_info(device)[0])
    import psutil

    from prunebench.workers import cores

    return int(MEMORY_SHARE * psutil.virtual_memory().available / cores())


def taylor_estimate(derivatives: Tensor, order: int) -> Tensor:
    """Σ_{j=1..order} (−1)^j / j! · d_j: the estimated loss change of removing each channel."""
    return sum((-1) ** j / math.factorial(j) * derivatives[j - 1] for j in range(1, order + 1))


def channel_gradient_norms(
    model: nn.Module, points: Points, batches: Batches, loss_fn: Loss = cross_entropy
) -> dict[str, Tensor]:
    """‖∂L/∂a_c‖ of each unit's signal a_c at its gate points, averaged over the batches."""
    model.eval()
    device = next(model.parameters()).device
    norms: dict[str, Tensor] = {}
    for x, y in batches:
        with signal_grads(model, points) as found:
            model.zero_grad(set_to_none=True)
            loss_fn(model(x.to(device)), y.to(device)).backward()
        for root, squares in found.items():
            squared = cast(Tensor, sum(squares))
            norms[root] = norms.get(root, 0) + squared.sqrt().cpu() / len(batches)
    model.zero_grad(set_to_none=True)
    return norms


def fidelity(
    model: nn.Module,
    points: Points,
    batches: Batches,
    derivatives: dict[str, Tensor],
    channels: int,
    generator: torch.Generator,
) -> tuple[dict[str, float], list[dict]]:
    """Spearman ρ between each order's estimate (from order-3 `derivatives`) and the exact ΔL,
    on `channels` channels sampled from all groups; and the rows behind it."""
    pool = [(root, c) for root, d in derivatives.items() for c in range(d.shape[1])]
    sample: dict[str, list[int]] = {}
    for i in sorted(torch.randperm(len(pool), generator=generator)[:channels].tolist()):
        sample.setdefault(pool[i][0], []).append(pool[i][1])
    exact, _ = loss_changes(model, points, batches, {r: torch.tensor(c) for r, c in sample.items()})
    rows = [
        {
            "layer": root,
            "channel": c,
            "exact": float(exact[root][i]),
            **{f"order{k}": float(taylor_estimate(derivatives[root][:, c : c + 1], k)) for k in (1, 2, 3)},
        }
        for root, cs in sample.items()
        for i, c in enumerate(cs)
    ]
    truth = torch.tensor([r["exact"] for r in rows])
    return {f"order{k}": spearman(torch.tensor([r[f"order{k}"] for r in rows]), truth) for k in (1, 2, 3)}, rows


def spearman(a: Tensor, b: Tensor) -> float:
    """Spearman rank correlation (average ranks for ties); NaN where either is constant."""
    from scipy.stats import ConstantInputWarning, spearmanr  # slow to import: only the fidelity checks need it

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantInputWarning)
        return float(spearmanr(a.double().numpy(), b.double().numpy()).statistic)


@register("taylor")
class Taylor(Method):
    unit = "channel"
    scope = "global"
    kinds = ("channel", "head")

    @dataclass(frozen=True)
    class Knobs(RankingKnobs):
        order: int = knob(1, one_of(1, 2, 3))  # the highest derivative in the estimate
        batches: int = knob(4, integer(1))  # calibration batches from the training split
        gradient_flow: bool = knob(False, boolean())  # weight scores by sigmoid of the standardised gradient norm
        fidelity_channels: int = knob(0, integer(0))  # channels sampled for the exact-ΔL oracle (0 = off)
        memory_mib: int | None = knob(None, optional(integer(1)))  # for orders 2-3 (null: `scoring_memory`)

    def refuses(self, model: nn.Module, ctx: Context) -> str | None:
        """The gates' gradients and, for orders 2-3, one forward-mode direction of the first group,
        on the first calibration batch (none: nothing to try)."""
        batch = list(islice(ctx.batches(), 1))
        points = gate_points(model, ctx.input_shape, self.kinds)
        if not batch or not points:
            return None
        try:
            gate_derivatives(model, points, batch, 1)
            if self.knobs.order > 1 or self.knobs.fidelity_channels:
                root, first = next(iter(points.items()))
                x, y = batch[0]
                loss = _loss(model, root, {root: first}, x.to(ctx.device), y.to(ctx.device), cross_entropy)
                along(loss, torch.eye(unit_count(points, root), device=ctx.device)[:1], 2, 1)
        except Exception as error:  # whatever the model's derivatives raise is the finding
            return f"the gates' derivatives through this model fail ({briefly(error)})"
        finally:
            model.zero_grad(set_to_none=True)
        return None

    def score(self, model: nn.Module, layers: Layers, ctx: Context) -> Scored:
        cfg = self.knobs
        points = gate_points(model, ctx.input_shape, self.kinds)
        batches = list(islice(ctx.batches(), cfg.batches))
        orders = 3 if cfg.fidelity_channels else cfg.order
        memory = None if cfg.memory_mib is None else cfg.memory_mib * 2**20
        derivatives = gate_derivatives(model, points, batches, orders, memory=memory)
        estimates = {root: taylor_estimate(d, cfg.order) for root, d in derivatives.items()}
        scores = {root: e.abs().cpu() for root, e in estimates.items()}
        norms = channel_gradient_norms(model, points, batches)
        if cfg.gradient_flow:
            scores = {
                root: s * torch.sigmoid((norms[root] - norms[root].mean()) / norms[root].std().clamp_min(1e-12))
                for root, s in scores.items()
            }
        tables = {
            "gradient_flow": [
                {"layer": root, "channel": c, "gradient_norm": float(n)}
                for root, values in norms.items()
                for c, n in enumerate(values)
            ]
        }
        metrics = {}
        if cfg.fidelity_channels:
            rhos, tables["fidelity"] = fidelity(
                model, points, batches, derivatives, cfg.fidelity_channels, ctx.generator
            )
            metrics = {"taylor_fidelity": rhos}
        return Scored(member_scores(groups(model, ctx.input_shape), scores), metrics, tables)
