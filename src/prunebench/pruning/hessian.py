"""Top eigenpairs of the loss Hessian with respect to chosen parameters.

Hessian-vector products are exact (double backward: the gradient of g·v, where g is the
gradient), averaged over calibration batches, with the model in eval mode. The eigenpairs of
largest magnitude come from power iteration with deflation: each new vector is kept
orthogonal to the ones already found (as in PyHessian).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor, nn

Batches = list[tuple[Tensor, Tensor]]


def _flat(tensors: list[Tensor] | tuple[Tensor, ...]) -> Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def _split(vector: Tensor, params: list[nn.Parameter]) -> list[Tensor]:
    return [chunk.view_as(p) for chunk, p in zip(vector.split([p.numel() for p in params]), params)]


class HessianOperator:
    """v ↦ H v for the mean loss over `batches`, H taken with respect to `params` only."""

    def __init__(
        self, model: nn.Module, params: list[nn.Parameter], batches: Batches, loss_fn=nn.functional.cross_entropy
    ):
        self.model, self.params, self.batches, self.loss_fn = model, params, batches, loss_fn
        self.size = sum(p.numel() for p in params)
        self.device, self.dtype = params[0].device, params[0].dtype
        self.calls = 0

    def __call__(self, vector: Tensor) -> Tensor:
        self.model.eval()
        total = torch.zeros(self.size, device=self.device, dtype=self.dtype)
        for x, y in self.batches:
            loss = self.loss_fn(self.model(x.to(self.device)), y.to(self.device))
            grads = torch.autograd.grad(loss, self.params, create_graph=True)
            dot = cast(Tensor, sum((g * v).sum() for g, v in zip(grads, _split(vector, self.params))))
            total += _flat(torch.autograd.grad(dot, self.params)).detach()
        self.calls += 1
        return total / len(self.batches)


@dataclass
class Eigenpairs:
    values: Tensor  # [k], largest magnitude first
    vectors: Tensor  # [k, size], orthonormal rows
    iterations: list[int]  # power iterations each pair took


def top_eigenpairs(
    operator: HessianOperator,
    k: int,
    iterations: int = 100,
    tol: float = 1e-4,
    generator: torch.Generator | None = None,
) -> Eigenpairs:
    """The k eigenpairs of largest |λ|, by power iteration with deflation. A pair is done when
    its eigenvalue estimate changes by less than `tol` relative, or after `iterations` steps."""
    values: list[float] = []
    vectors: list[Tensor] = []
    used: list[int] = []
    for _ in range(min(k, operator.size)):
        v = torch.randn(operator.size, generator=generator).to(operator.device, operator.dtype)
        estimate: float | None = None
        step = 0
        for step in range(1, iterations + 1):  # noqa: B007 (the steps a pair took, read below)
            for u in vectors:  # deflation: stay orthogonal to the pairs found
                v -= (v @ u) * u
            v /= v.norm().clamp_min(1e-30)
            hv = operator(v)
            previous, estimate = estimate, float(v @ hv)
            v = hv
            if previous is not None and abs(estimate - previous) <= tol * (abs(previous) + 1e-12):
                break
        for u in vectors:
            v -= (v @ u) * u
        vectors.append(v / v.norm().clamp_min(1e-30))
        assert estimate is not None, "at least one iteration (k and iterations are ≥ 1)"
        values.append(estimate)
        used.append(step)
    return Eigenpairs(torch.tensor(values, dtype=operator.dtype), torch.stack(vectors), used)
