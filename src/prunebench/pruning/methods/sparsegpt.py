"""SparseGPT (Frantar and Alistarh, ICML 2023): optimal brain surgeon, row by row, with the layer
Hessian H = XᵀX of the calibration inputs. Columns are visited in order, in blocks of `block`:
each block's mask is chosen by w² / [H⁻¹]_jj² over the block (or the smallest M − N of every M
columns of each row), and each column's pruned weights are compensated on the columns after it
through the upper Cholesky factor of H⁻¹, so that the layer's output on the calibration inputs
changes least. H is damped by `damping` × its mean diagonal, as the paper does; inputs that never
fire (a zero diagonal) lose their weights. Layers are calibrated one after another on the inputs
of the already pruned and updated layers before them (`pruning.rows`).

The budget search sees masks; the weights the solver leaves are written when the chosen masks are
applied (`adjust`), by replaying the same solve with those masks, which gives the same weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from prunebench.allowed import integer, number
from prunebench.pruning import rows
from prunebench.pruning.methods.base import CalibratedKnobs, Context, Scored, knob
from prunebench.pruning.methods.calibrated import Calibrated
from prunebench.pruning.methods.registry import register
from prunebench.training.models import Layer, Layers


@dataclass(frozen=True)
class SparseGPTKnobs(CalibratedKnobs):
    block: int = knob(128, integer(1))  # columns whose masks are chosen together
    damping: float = knob(0.01, number(0, 1, lo_open=False))  # of H's mean diagonal, added to it


def solve(
    weight: Tensor,
    hessian: Tensor,
    fraction: float,
    pattern: str,
    block: int,
    damping: float,
    keep: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """The pruned weight [outputs, inputs] and its keep-mask; with `keep`, that mask is used
    instead of chosen (the same updates, given the same mask)."""
    w = weight.double().clone()
    h = hessian.double().clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    h += damping * torch.diag(h).mean() * torch.eye(len(h), dtype=h.dtype)
    upper = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    nm = rows.n_m(pattern)
    chosen = torch.ones_like(w, dtype=torch.bool) if keep is None else keep.clone()
    columns = w.shape[1]
    for start in range(0, columns, block):
        end = min(start + block, columns)
        w1, u1 = w[:, start:end].clone(), upper[start:end, start:end]
        errors = torch.zeros_like(w1)
        if keep is None and nm is None:  # the block's weights of least saliency w² / [H⁻¹]_jj², over its rows
            chosen[:, start:end] = rows.row_mask(
                _saliency(w1, u1, 0, end - start).reshape(1, -1), fraction, pattern
            ).view(w1.shape)
        for i in range(end - start):
            if keep is None and nm is not None and i % nm[1] == 0:  # each row's M − N least salient of the next M
                saliency = _saliency(w1, u1, i, i + nm[1])
                chosen[:, start + i : start + i + nm[1]] = rows.row_mask(saliency, fraction, pattern)
            column = w1[:, i]
            kept = column * chosen[:, start + i]
            error = (column - kept) / u1[i, i]
            w1[:, i:] -= error[:, None] * u1[i, i:][None, :]
            w1[:, i] = kept
            errors[:, i] = error
        w[:, start:end] = w1
        w[:, end:] -= errors @ upper[start:end, end:]
    return (w * chosen).to(weight.dtype), chosen


def _saliency(w1: Tensor, u1: Tensor, a: int, b: int) -> Tensor:
    """OBS's w² / [H⁻¹]_jj² of columns a:b of a block (the Cholesky factor's diagonal squared is H⁻¹'s)."""
    return w1[:, a:b].square() / torch.diag(u1)[a:b].square()


@register("sparsegpt")
class SparseGPT(Calibrated):
    Knobs = SparseGPTKnobs

    def calibrate(
        self, work: nn.Module, layers: Layers, batches: list[Tensor], target: float, masks: dict[str, Tensor] | None
    ) -> dict[str, Tensor]:
        knobs = self.knobs

        def choose(name: str, layer: Layer, hessian: Tensor, _count: int) -> Tensor:
            given = None if masks is None else rows.rows(masks[f"{name}.weight"]).to(layer.weight.device)
            weight = rows.rows(layer.weight.detach())
            pruned, keep = solve(weight, hessian, target, knobs.pattern, knobs.block, knobs.damping, given)
            with torch.no_grad():
                weight.copy_(pruned)
            return keep

        return rows.layer_by_layer(work, layers, batches, rows.gram, choose)

    def adjust(
        self, model: nn.Module, layers: Layers, keep: dict[str, Tensor], ctx: Context, scored: Scored
    ) -> dict[str, float]:
        """Write the solver's weights for the chosen masks: the same solve, replayed with them."""
        _, batches, _ = scored.state
        self.calibrate(model, layers, batches, 0.0, keep)
        return {}
