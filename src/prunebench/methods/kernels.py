"""Pruning inside convolutions, as masks: whole 2-D kernels, or patterns inside 3×3 kernels.

Both keep the dense layer shapes: their zeros count as removed MACs in the sparsity-aware
count, but dense kernels do not run faster for them (see the measured latency).
"""

from __future__ import annotations

from itertools import combinations

import torch
from torch import Tensor, nn

from prunebench.criteria import weight_magnitude
from prunebench.methods.base import Method
from prunebench.methods.magnitude import Magnitude


class Kernel(Method):
    """Whole kernels (one input × output channel pair of a conv) ranked by L1; every layer loses
    `ratio` of its kernels. Linear layers count each weight as a 1×1 kernel."""

    unit = "weight"

    def scores(self, model, layers, ctx):
        return {name: m.weight.detach().abs().flatten(2).sum(2) if m.weight.dim() > 2 else weight_magnitude(m)
                for name, m in layers.items()}


def patterns(keep: int) -> Tensor:
    """The library: every set of `keep` positions of a 3×3 kernel that contains the centre and
    is 4-connected, as a [P, 9] 0/1 matrix."""
    def connected(cells: tuple[int, ...]) -> bool:
        seen, todo = {4}, [4]
        while todo:
            r, c = divmod(todo.pop(), 3)
            for n in (3 * (r + dr) + c + dc for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1))
                      if 0 <= r + dr < 3 and 0 <= c + dc < 3):
                if n in cells and n not in seen:
                    seen.add(n)
                    todo.append(n)
        return len(seen) == len(cells)

    library = [(4, *rest) for rest in combinations([0, 1, 2, 3, 5, 6, 7, 8], keep - 1) if connected((4, *rest))]
    matrix = torch.zeros(len(library), 9)
    for i, cells in enumerate(library):
        matrix[i, list(cells)] = 1
    return matrix


class IntraKernel(Magnitude):
    """Pattern pruning: every 3×3 kernel keeps round(9·(1 − ratio)) weights, in the library
    pattern that preserves the most of its L2 norm. Other layers are left dense, so the
    achieved sparsity is lower than `ratio`."""

    def layer_ratios(self, model, layers, target, ctx):
        keep = max(1, round(9 * (1 - target)))
        library = patterns(keep)
        self.metrics = {"kept_per_kernel": keep, "library_patterns": len(library)}
        self._choice = {}
        for name, layer in layers.items():
            if isinstance(layer, nn.Conv2d) and tuple(layer.kernel_size) == (3, 3):
                energy = layer.weight.detach().cpu().reshape(-1, 9).square() @ library.T  # [kernels, P]
                self._choice[name] = library[energy.argmax(1)].reshape(layer.weight.shape).bool()
        return {name: (1 - keep / 9) if name in self._choice else 0.0 for name in layers}

    def adjust(self, model, layers, masks, ctx) -> None:
        """Replace the magnitude selection inside each 3×3 conv by the chosen patterns."""
        for name, pattern in self._choice.items():
            masks[f"{name}.weight"].copy_(pattern)
