"""The exact loss change of removing one unit (Molchanov et al.'s "oracle"): ΔL_c = L(m_c = 0) −
L(m_c = 1), each unit's gate (`coupling.Gate`) set to zero and the calibration loss evaluated,
model in eval mode. A group's units are evaluated together, `chunk` of them at once: the batch
repeated once per unit, each copy with its own unit gated off.

Where torch.fx traces the model, nothing before the group's gates is computed again: one pass
records the values that the nodes depending on the gates read (`Traced`), and each chunk runs only
those nodes. Elsewhere (a model fx cannot trace, or one whose traced re-run disagrees with the full
one) every chunk runs the whole model with hooks at the gates.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import torch
from torch import Tensor, fx, nn

from prunebench.pruning.coupling import Gate
from prunebench.pruning.hooks import Points, along, at_gates, unit_count
from prunebench.training.loops import cross_entropy
from prunebench.training.models import feature_dim

Loss = Callable[[Tensor, Tensor], Tensor]
Batches = list[tuple[Tensor, Tensor]]


def _scaled(signal: Tensor, gate: Gate, dim: int, gates: Tensor) -> Tensor:
    """`signal` of `len(gates)` stacked copies of a batch, copy i scaled by gate row i."""
    copies = len(gates)
    scale = torch.stack([along(row, gate, signal.dim(), dim) for row in gates])  # [copies, 1, …]
    return (signal.view(copies, -1, *signal.shape[1:]) * scale).view(signal.shape)


@contextmanager
def _copies_gated(model: nn.Module, points: Points, root: str, gates: Tensor) -> Iterator[None]:
    def scale(_root: str, gate: Gate, signal: Tensor, dim: int) -> Tensor:
        return _scaled(signal, gate, dim, gates)

    with at_gates(model, points, [root], scale):
        yield


def _losses(logits: Tensor, y: Tensor, copies: int, loss_fn: Loss) -> Tensor:
    return torch.stack([loss_fn(part, y) for part in logits.view(copies, -1, *logits.shape[1:])])


class Traced:
    """The model as an fx graph that re-runs only what depends on a group's gates.

    `record` runs the whole graph once and keeps the values that gate-dependent nodes of the given
    groups read (cloned: a later in-place operation must not change them); `losses` re-runs the
    gate-dependent nodes of one group for stacked copies of the batch, each copy gated by its row."""

    def __init__(self, model: nn.Module, points: Points):
        self.graph = fx.symbolic_trace(model)
        self.modules = dict(self.graph.named_modules())
        nodes = list(self.graph.graph.nodes)
        self.order = {node: i for i, node in enumerate(nodes)}
        self.batched = _descendants([n for n in nodes if n.op == "placeholder"])
        self.gates: dict[str, dict[fx.Node, Gate]] = {}
        for root, gates in points.items():
            by_name = {gate.module: gate for gate in gates}
            self.gates[root] = {n: by_name[n.target] for n in nodes if n.op == "call_module" and n.target in by_name}
        self.dirty = {
            root: sorted(_descendants(list(found)), key=self.order.__getitem__) for root, found in self.gates.items()
        }
        self.read = {
            root: {arg for node in dirty for arg in node.all_input_nodes} - set(dirty)
            for root, dirty in self.dirty.items()
        }

    @torch.no_grad()
    def record(self, x: Tensor) -> dict[fx.Node, Any]:
        keep = set().union(*self.read.values())
        env: dict[fx.Node, Any] = {}
        kept: dict[fx.Node, Any] = {}
        last = {arg: self.order[node] for node in self.order for arg in node.all_input_nodes}
        for node, position in self.order.items():
            env[node] = self._run(
                node, cast(tuple[Any, Any], fx.node.map_arg((node.args, node.kwargs), env.__getitem__)), x
            )
            if node in keep:
                kept[node] = env[node].clone() if isinstance(env[node], Tensor) else env[node]
            for arg in node.all_input_nodes:
                if last[arg] == position:
                    del env[arg]
        return kept

    def losses(self, kept: dict[fx.Node, Any], root: str, gates: Tensor, y: Tensor, loss_fn: Loss) -> Tensor:
        copies, env = len(gates), cast(dict[fx.Node, Any], {})

        def value(node: fx.Node) -> Any:
            if node in env:
                return env[node]
            found = kept[node]
            if node in self.batched and isinstance(found, Tensor):
                return found.repeat(copies, *[1] * (found.dim() - 1))
            return found

        logits = None
        for node in self.dirty[root]:
            args, kwargs = cast(tuple[Any, Any], fx.node.map_arg((node.args, node.kwargs), value))
            gate = self.gates[root].get(node)
            if gate is not None and gate.input:
                signal = args[0]
                args = (_scaled(signal, gate, signal.dim() - 1, gates), *args[1:])
            out = self._run(node, (args, kwargs), None)
            if gate is not None and not gate.input:
                out = _scaled(out, gate, feature_dim(self.modules[str(node.target)], out.dim()), gates)
            env[node] = out
            if node.op == "output":
                logits = out
        assert isinstance(logits, Tensor), "the output depends on every gate"
        return _losses(logits, y, copies, loss_fn)

    def _run(self, node: fx.Node, arguments: tuple, x: Tensor | None) -> Any:
        args, kwargs = arguments
        if node.op == "placeholder":
            return x
        if node.op == "get_attr":
            return functools.reduce(getattr, str(node.target).split("."), self.graph)
        if node.op == "call_module":
            return self.modules[str(node.target)](*args, **kwargs)
        if node.op == "call_function":
            return cast(Callable[..., Any], node.target)(*args, **kwargs)
        if node.op == "call_method":
            return getattr(args[0], str(node.target))(*args[1:], **kwargs)
        return args[0]  # output


def _descendants(starts: list[fx.Node]) -> set[fx.Node]:
    found, stack = set(starts), list(starts)
    while stack:
        for user in stack.pop().users:
            if user not in found:
                found.add(user)
                stack.append(user)
    return found


@torch.no_grad()
def traced_model(model: nn.Module, points: Points, batch: tuple[Tensor, Tensor], loss_fn: Loss) -> Traced | None:
    """The traced model, if fx traces it and its re-run of each group agrees with the full model on
    one batch with every gate at 1 (else None: the hooks' full forward passes)."""
    if not points or not batch:
        return None
    try:
        traced = Traced(model, points)
        x, y = batch
        kept = traced.record(x)
        full = loss_fn(model(x), y)
        for root in points:
            # two copies: a batch size read from a node before the gates would show here
            again = traced.losses(kept, root, torch.ones(2, unit_count(points, root), device=x.device), y, loss_fn)
            if not torch.allclose(again, full.expand(2), rtol=1e-4, atol=1e-6):
                return None
        return traced
    except Exception:  # whatever fx or the re-run raises: the model runs whole instead
        return None


@torch.no_grad()
def loss_changes(
    model: nn.Module,
    points: Points,
    batches: Batches,
    units: dict[str, Tensor] | None = None,
    chunk: int | Callable[[str], int] = 16,
    loss_fn: Loss = cross_entropy,
    traced: bool = True,
) -> tuple[dict[str, Tensor], bool]:
    """ΔL of removing each unit (all of each group's, or those in `units`), averaged over the
    batches: per group root, a tensor in the order of its units; and whether the prefix was cached.
    `chunk`: units evaluated at once (or a function of the group root giving it)."""
    model.eval()
    device = next(model.parameters()).device
    batches = [(x.to(device), y.to(device)) for x, y in batches]
    graph = traced_model(model, points, batches[0], loss_fn) if traced and batches else None
    chosen = units or {root: torch.arange(unit_count(points, root)) for root in points}
    totals = {root: torch.zeros(len(c), dtype=torch.float64) for root, c in chosen.items()}
    sizes = {root: chunk(root) if callable(chunk) else chunk for root in chosen}
    for x, y in batches:
        base = loss_fn(model(x), y)
        kept = graph.record(x) if graph is not None else None
        for root, wanted in chosen.items():
            for start in range(0, len(wanted), sizes[root]):
                part = wanted[start : start + sizes[root]]
                gates = torch.ones(len(part), unit_count(points, root), device=device)
                gates[torch.arange(len(part)), part.to(device)] = 0
                if graph is not None and kept is not None:
                    losses = graph.losses(kept, root, gates, y, loss_fn)
                else:
                    with _copies_gated(model, points, root, gates):
                        losses = _losses(model(x.repeat(len(part), *[1] * (x.dim() - 1))), y, len(part), loss_fn)
                totals[root][start : start + len(part)] += (losses - base).double().cpu()
    return {root: (total / len(batches)).float() for root, total in totals.items()}, graph is not None
