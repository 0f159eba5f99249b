"""Top eigenpairs of the loss Hessian with respect to chosen parameters.

Hessian-vector products are exact (double backward: the gradient of g·v, where g is the
gradient), averaged over calibration batches, with the model in eval mode. The first backward
pass (g and its graph) is made once per batch and kept across products (`keep_graph`), so a
product costs one backward pass, not a forward and two backward passes. The eigenpairs of
largest magnitude come from the Lanczos method with full reorthogonalisation, its recurrence
in float64: each product extends one Krylov subspace that serves every pair, where power
iteration with deflation spends products on one pair at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor, nn

from prunebench.training.loops import cross_entropy
from prunebench.training.models.transformer import differentiable_attention

Batches = list[tuple[Tensor, Tensor]]


def _flat(tensors: list[Tensor] | tuple[Tensor, ...]) -> Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def _split(vector: Tensor, params: list[nn.Parameter]) -> list[Tensor]:
    return [chunk.view_as(p) for chunk, p in zip(vector.split([p.numel() for p in params]), params)]


class HessianOperator:
    """v ↦ H v for the mean loss over `batches`, H taken with respect to `params` only. With
    `keep_graph`, each batch's gradient and its graph are built on the first product and kept
    (memory: one forward and backward graph per batch); without, every product rebuilds them."""

    def __init__(
        self,
        model: nn.Module,
        params: list[nn.Parameter],
        batches: Batches,
        loss_fn=cross_entropy,
        keep_graph: bool = True,
    ):
        self.model, self.params, self.batches, self.loss_fn = model, params, batches, loss_fn
        self.size = sum(p.numel() for p in params)
        self.device, self.dtype = params[0].device, params[0].dtype
        self.keep_graph = keep_graph
        self.calls = 0
        self._gradients: list[tuple[Tensor, ...]] = []

    def _gradient(self, index: int) -> tuple[Tensor, ...]:
        if index < len(self._gradients):
            return self._gradients[index]
        x, y = self.batches[index]
        with differentiable_attention():
            loss = self.loss_fn(self.model(x.to(self.device)), y.to(self.device))
        grads = torch.autograd.grad(loss, self.params, create_graph=True)
        if self.keep_graph:
            self._gradients.append(grads)
        return grads

    def __call__(self, vector: Tensor) -> Tensor:
        self.model.eval()
        vector = vector.to(self.device, self.dtype)
        total = torch.zeros(self.size, device=self.device, dtype=self.dtype)
        for index in range(len(self.batches)):
            grads = self._gradient(index)
            dot = cast(Tensor, sum((g * v).sum() for g, v in zip(grads, _split(vector, self.params))))
            total += _flat(torch.autograd.grad(dot, self.params, retain_graph=self.keep_graph)).detach()
        self.calls += 1
        return total / len(self.batches)

    def release(self) -> None:
        """Drop the kept graphs."""
        self._gradients.clear()


@dataclass
class Eigenpairs:
    values: Tensor  # [k], largest magnitude first, float64
    vectors: Tensor  # [k, size], orthonormal rows, float64
    products: int  # Hessian-vector products the solve took
    residuals: Tensor  # [k], ‖H v − λ v‖ / |λ| of each pair, as the Lanczos recurrence estimates it


def top_eigenpairs(
    operator: HessianOperator,
    k: int,
    max_products: int = 100,
    tol: float = 1e-3,
    generator: torch.Generator | None = None,
) -> Eigenpairs:
    """The k eigenpairs of largest |λ| by Lanczos with full reorthogonalisation (float64). The
    solve stops when every one of the k Ritz pairs has a relative residual ‖H v − λ v‖ / |λ| of at
    most `tol` (from the recurrence: |β_m · s_m|, no extra product), when the Krylov subspace is
    invariant, or after `max_products` products."""
    n = operator.size
    k = min(k, n)
    steps = min(max(max_products, k), n)
    basis = torch.zeros(steps, n, dtype=torch.float64, device=operator.device)
    q = torch.randn(n, generator=generator, dtype=torch.float64).to(operator.device)
    q /= q.norm()
    alphas: list[float] = []
    betas: list[float] = []
    found: tuple[Tensor, Tensor, Tensor] | None = None
    for j in range(steps):
        basis[j] = q
        w = operator(q).double()
        alphas.append(float(w @ q))
        for _ in range(2):  # full reorthogonalisation, twice: orthogonal to working precision
            w -= basis[: j + 1].T @ (basis[: j + 1] @ w)
        beta = float(w.norm())
        if j + 1 >= k:
            found = _ritz(alphas, betas, beta, k)
            if beta <= 1e-12 * max(abs(a) for a in alphas) or bool((found[2] <= tol).all()):
                break
        betas.append(beta)
        q = w / beta
    assert found is not None, "at least k products (k ≥ 1)"
    values, coefficients, residuals = found
    vectors = coefficients.T.to(operator.device) @ basis[: len(alphas)]
    operator.release()
    return Eigenpairs(values, vectors, len(alphas), residuals)


def _ritz(alphas: list[float], betas: list[float], beta: float, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """The k Ritz values of largest magnitude of the tridiagonal T = tridiag(β, α, β), their
    coefficients in the Lanczos basis [m, k], and their relative residuals |β · s_m| / |θ|."""
    m = len(alphas)
    tri = torch.diag(torch.tensor(alphas, dtype=torch.float64))
    if m > 1:
        off = torch.tensor(betas[: m - 1], dtype=torch.float64)
        tri += torch.diag(off, 1) + torch.diag(off, -1)
    theta, s = torch.linalg.eigh(tri)
    order = theta.abs().argsort(descending=True)[:k]
    theta, s = theta[order], s[:, order]
    residuals = (beta * s[-1].abs()) / theta.abs().clamp_min(1e-300)
    return theta, s, residuals
