"""Hessian-eigenvector merge pruning, implemented as the original project intended.

The top-k eigenpairs (λ_j, v_j) of the loss Hessian with respect to the prunable weights
(`hessian.top_eigenpairs`; `scope` global, or per layer) give a low-rank Hessian
H ≈ Σ_j λ_j v_j v_jᵀ. Importance (`score`): `saliency`, ½·w_i²·Σ_j λ_j·v_ji², the second-order
loss increase of zeroing w_i under that Hessian; or `eigvec`, the magnitude of w_i's components
in the dominant eigenvectors (the original idea). Before a weight is zeroed, it is merged into
the kept weight of the same output unit whose change can best make up for it: the partner j
maximising H_ij² / H_jj (the second-order loss it recovers) receives w_i·H_ij/H_jj (`coupling`),
w_i/2 (`half`, the original rule) or nothing (`none`, the ablation). Optionally, `damping`·|λ_k|
on the diagonal models the curvature the top-k pairs miss; it shrinks the factors, and on the
default benchmark it cost most of what merging gains, so it is off by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from typing import Any, Literal, cast

import torch
from torch import Tensor, nn

from prunebench.allowed import boolean, integer, number, one_of
from prunebench.errors import briefly
from prunebench.pruning.hessian import HessianOperator, top_eigenpairs
from prunebench.pruning.methods.base import Context, Method, Scored, knob
from prunebench.pruning.methods.base import Knobs as BaseKnobs
from prunebench.pruning.methods.registry import register
from prunebench.training.models import Layers, prunable_layers


@dataclass
class LowRankHessian:
    """Per layer, the eigenpairs' components: H restricted to the layer ≈ Σ_j λ_j v_j v_jᵀ."""

    components: dict[str, Tensor]  # layer -> [k, *weight.shape]
    eigenvalues: dict[str, Tensor]  # layer -> [k]


@register("hessian_merge")
class HessianMerge(Method):
    unit = "weight"
    scope: Literal["layer", "global"] = "global"  # knob `scope: per_layer` makes it "layer"

    @dataclass(frozen=True)
    class Knobs(BaseKnobs):
        k: int = knob(8, integer(1))  # eigenpairs
        products: int = knob(100, integer(1))  # Hessian-vector products (Lanczos steps) at most
        tol: float = knob(1e-3, number(0, 1))  # every pair's relative residual ‖Hv − λv‖/|λ| that ends the solve
        keep_graph: bool = knob(True, boolean())  # keep each batch's first backward across products (memory)
        batches: int = knob(2, integer(1))  # calibration batches averaged in every Hessian-vector product
        scope: str = knob("global", one_of("global", "per_layer"))  # eigenpairs of all weights, or of each layer's
        score: str = knob("saliency", one_of("saliency", "eigvec"))  # ½·w²·Σλv², or eigenvector components
        merge: str = knob("coupling", one_of("coupling", "half", "none"))  # what a pruned weight's partner gets
        damping: float = knob(0.0, number(0, 1e6))  # × the smallest |λ| found, added to the Hessian's diagonal

    def __init__(self, knobs=None):
        super().__init__(knobs)
        self.scope = "global" if self.knobs.scope == "global" else "layer"

    def refuses(self, model: nn.Module, ctx: Context) -> str | None:
        """One Hessian-vector product on the first calibration batch (none: nothing to try)."""
        batch = list(islice(ctx.batches(), 1))
        if not batch:
            return None
        params = [cast(nn.Parameter, layer.weight) for layer in prunable_layers(model).values()]
        try:
            HessianOperator(model, params, batch)(torch.ones(sum(p.numel() for p in params)))
        except Exception as error:  # whatever the model's second derivative raises is the finding
            return f"a Hessian-vector product through this model fails ({briefly(error)})"
        finally:
            model.zero_grad(set_to_none=True)
        return None

    def score(self, model: nn.Module, layers: Layers, ctx: Context) -> Scored:
        cfg = self.knobs
        batches = list(islice(ctx.batches(), cfg.batches))
        blocks = [list(layers)] if cfg.scope == "global" else [[name] for name in layers]
        hessian = LowRankHessian({}, {})
        spectrum: list[dict[str, Any]] = []
        hvps = 0
        for block in blocks:
            params = [cast(nn.Parameter, layers[name].weight) for name in block]
            operator = HessianOperator(model, params, batches, keep_graph=cfg.keep_graph)
            pairs = top_eigenpairs(operator, cfg.k, cfg.products, cfg.tol, ctx.generator)
            hvps += pairs.products
            label = "all" if cfg.scope == "global" else block[0]
            spectrum += [
                {"block": label, "index": i, "eigenvalue": float(v), "residual": float(r)}
                for i, (v, r) in enumerate(zip(pairs.values, pairs.residuals))
            ]
            dtype = params[0].dtype  # the recurrence ran in float64; scores come in the weights' precision
            for name, part in zip(block, pairs.vectors.split([p.numel() for p in params], dim=1)):
                shape = (len(pairs.values), *layers[name].weight.shape)
                hessian.components[name] = part.reshape(shape).to(dtype).cpu()
                hessian.eigenvalues[name] = pairs.values.to(dtype).cpu()
        magnitudes = torch.cat([c.abs().flatten() for c in hessian.components.values()])
        counts, edges = torch.histogram(magnitudes.log10().clamp_min(-12), bins=60)
        tables = {
            "spectrum": spectrum,
            "eigenvector_distribution": [
                {"log10_magnitude": float(e), "count": int(c)} for e, c in zip(edges[:-1], counts)
            ],
        }
        metrics = {"top_eigenvalue": float(max(abs(r["eigenvalue"]) for r in spectrum)), "hvps": hvps}
        scores: dict[str, Tensor] = {}
        for name, layer in layers.items():
            v = hessian.components[name]
            lam = hessian.eigenvalues[name].view(-1, *[1] * layer.weight.dim())
            if cfg.score == "saliency":
                scores[name] = 0.5 * layer.weight.detach().cpu().square() * (lam * v.square()).sum(0)
            else:
                scores[name] = v.square().sum(0).sqrt()
        return Scored(scores, metrics, tables, state=hessian)

    @torch.no_grad()
    def adjust(
        self, model: nn.Module, layers: Layers, keep: dict[str, Tensor], ctx: Context, scored: Scored
    ) -> dict[str, float]:
        """Merge each newly pruned weight into its partner (see the module docstring)."""
        if self.knobs.merge == "none":
            return {"merged_fraction": 0.0}
        hessian: LowRankHessian = scored.state
        merged = pruned_total = 0
        for name, layer in layers.items():
            weight = layer.weight
            rows = weight.detach().cpu().reshape(weight.shape[0], -1).clone()
            kept_weights = keep[f"{name}.weight"].reshape(weight.shape[0], -1)
            v = hessian.components[name].reshape(len(hessian.eigenvalues[name]), weight.shape[0], -1)
            lam = hessian.eigenvalues[name].view(-1, 1)
            damping = self.knobs.damping * float(hessian.eigenvalues[name].abs().min())
            for o in range(rows.shape[0]):
                pruned, kept = (~kept_weights[o]).nonzero().flatten(), kept_weights[o].nonzero().flatten()
                pruned = pruned[rows[o, pruned] != 0]  # weights already zero carry nothing
                pruned_total += len(pruned)
                if len(pruned) == 0 or len(kept) == 0:
                    continue
                h_pk = (v[:, o, pruned] * lam).T @ v[:, o, kept]  # [P, K] low-rank Hessian block
                h_kk = (lam * v[:, o, kept].square()).sum(0) + damping  # [K]
                usable = h_kk > 1e-12 * h_kk.abs().max().clamp_min(1e-30)
                gain = torch.where(usable, h_pk.square() / h_kk.clamp_min(1e-30), torch.zeros_like(h_pk))
                best = gain.argmax(1)
                ok = gain.gather(1, best[:, None]).squeeze(1) > 0
                factor = (
                    h_pk.gather(1, best[:, None]).squeeze(1) / h_kk[best]
                    if self.knobs.merge == "coupling"
                    else torch.full_like(best, 0.5, dtype=rows.dtype)
                )
                rows[o].index_add_(0, kept[best[ok]], rows[o, pruned[ok]] * factor[ok])
                merged += int(ok.sum())
            weight.copy_(rows.view_as(weight).to(weight.device))
        return {"merged_fraction": merged / max(pruned_total, 1)}
