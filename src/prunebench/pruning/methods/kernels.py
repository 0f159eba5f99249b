"""Pruning inside convolutions, as masks: whole 2-D kernels, or patterns inside 3×3 kernels.

Both keep the dense layer shapes: their zeros count as removed MACs in the sparsity-aware
count, but dense kernels do not run faster for them (see the measured latency).
"""

from __future__ import annotations

from itertools import combinations

import torch
from torch import Tensor, nn

from prunebench.pruning.criteria import weight_magnitude
from prunebench.pruning.methods.base import Context, Method, Scored
from prunebench.pruning.methods.magnitude import Magnitude
from prunebench.pruning.methods.registry import register
from prunebench.training.models import Layers


@register("kernel")
class Kernel(Method):
    """Whole kernels (one input × output channel pair of a conv) ranked by L1; every layer loses
    `ratio` of its kernels. Linear layers count each weight as a 1×1 kernel."""

    unit = "weight"

    def score(self, model: nn.Module, layers: Layers, ctx: Context) -> Scored:
        return Scored(
            {
                name: m.weight.detach().abs().flatten(2).sum(2) if m.weight.dim() > 2 else weight_magnitude(m)
                for name, m in layers.items()
            }
        )


def patterns(keep: int) -> Tensor:
    """The library: every set of `keep` positions of a 3×3 kernel that contains the centre and
    is 4-connected, as a [P, 9] 0/1 matrix."""

    def connected(cells: tuple[int, ...]) -> bool:
        seen, todo = {4}, [4]
        while todo:
            r, c = divmod(todo.pop(), 3)
            for n in (
                3 * (r + dr) + c + dc
                for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1))
                if 0 <= r + dr < 3 and 0 <= c + dc < 3
            ):
                if n in cells and n not in seen:
                    seen.add(n)
                    todo.append(n)
        return len(seen) == len(cells)

    library = [(4, *rest) for rest in combinations([0, 1, 2, 3, 5, 6, 7, 8], keep - 1) if connected((4, *rest))]
    matrix = torch.zeros(len(library), 9)
    for i, cells in enumerate(library):
        matrix[i, list(cells)] = 1
    return matrix


@register("intra_kernel")
class IntraKernel(Magnitude):
    """Pattern pruning: every 3×3 kernel keeps round(9·(1 − ratio)) weights, in the library
    pattern that preserves the most of its L2 norm. Other layers are left dense, so the
    achieved sparsity is lower than `ratio`."""

    def refuses(self, model: nn.Module, ctx: Context) -> str | None:
        if not any(isinstance(m, nn.Conv2d) and tuple(m.kernel_size) == (3, 3) for m in model.modules()):
            return "intra_kernel prunes inside 3×3 convolution kernels, and this model has none"
        return None

    def weight_masks(self, layers: Layers, scored: Scored, target: float, ctx: Context) -> dict[str, Tensor] | None:
        keep = kept_per_kernel(target)
        library = patterns(keep)
        masks = {}
        for name, layer in layers.items():
            weight = layer.weight.detach()
            if isinstance(layer, nn.Conv2d) and tuple(layer.kernel_size) == (3, 3):
                energy = weight.cpu().reshape(-1, 9).square() @ library.T  # [kernels, P]
                masks[f"{name}.weight"] = library[energy.argmax(1)].reshape(weight.shape).bool()
            else:
                masks[f"{name}.weight"] = torch.ones(weight.shape, dtype=torch.bool)
        return masks

    def adjust(
        self, model: nn.Module, layers: Layers, keep: dict[str, Tensor], ctx: Context, scored: Scored
    ) -> dict[str, float]:
        """What the patterns were: the weights each 3×3 kernel keeps, and how many patterns of that size exist."""
        kept = [
            int(mask.reshape(-1, 9)[0].sum())
            for name, mask in keep.items()
            if mask.dim() == 4 and mask.shape[-2:] == (3, 3)
        ]
        return {"kept_per_kernel": kept[0], "library_patterns": len(patterns(kept[0]))} if kept else {}


def kept_per_kernel(target: float) -> int:
    """The weights of a 3×3 kernel that `target` leaves, at least one."""
    return max(1, round(9 * (1 - target)))
