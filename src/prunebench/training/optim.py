"""SGD with momentum and the cosine learning rate, as torch.optim's `SGD` and `CosineAnnealingLR`
compute them (tests/test_optim.py compares the two).

Why not torch.optim: its first use imports torch._dynamo, seconds of wall time in every process
that trains, and the pipeline has about 20 such stage processes (benchmarks/README.md). The
update is three foreach calls, the schedule a closed form of the epoch: the state is the momentum
buffers and nothing else.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, cast

import torch
from torch import nn


def cosine(lr: float, epoch: int, epochs: int) -> float:
    """The learning rate of 0-based `epoch` of `epochs`, annealed from `lr` to 0 (no restarts)."""
    return lr * (1 + math.cos(math.pi * epoch / epochs)) / 2


class SGD:
    """p ← p − lr·b, b ← momentum·b + (∇p + weight_decay·p), b starting at the first gradient
    (torch's SGD with dampening 0, not Nesterov). Parameters without a gradient are left alone.
    `param_groups` has torch's shape, so `torch.amp.GradScaler` can unscale and step it."""

    def __init__(
        self, params: Iterable[nn.Parameter], lr: float, momentum: float = 0.0, weight_decay: float = 0.0
    ) -> None:
        self.param_groups: list[dict[str, Any]] = [{"params": list(params), "lr": lr}]
        self.momentum, self.weight_decay = momentum, weight_decay
        self.buffers: list[torch.Tensor | None] = [None] * len(self.param_groups[0]["params"])

    @property
    def lr(self) -> float:
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        self.param_groups[0]["lr"] = value

    def zero_grad(self, set_to_none: bool = True) -> None:
        for param in self.param_groups[0]["params"]:
            if set_to_none:
                param.grad = None
            elif param.grad is not None:
                param.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        live = [(i, p) for i, p in enumerate(self.param_groups[0]["params"]) if p.grad is not None]
        if not live:
            return
        index, params = [i for i, _ in live], [p for _, p in live]
        grads: list[torch.Tensor] = [p.grad for p in params]
        if self.weight_decay:
            grads = list(torch._foreach_add(grads, params, alpha=self.weight_decay))
        if self.momentum:
            going: list[tuple[Any, torch.Tensor]] = [
                (self.buffers[i], grad) for i, grad in zip(index, grads) if self.buffers[i] is not None
            ]
            if going:
                torch._foreach_mul_([b for b, _ in going], self.momentum)
                torch._foreach_add_([b for b, _ in going], [g for _, g in going])
            for i, grad in zip(index, grads):
                if self.buffers[i] is None:  # the first gradient starts the buffer
                    self.buffers[i] = grad.detach().clone()
            grads = [cast(torch.Tensor, self.buffers[i]) for i in index]
        torch._foreach_add_(params, grads, alpha=-self.lr)

    def state_dict(self) -> dict:
        return {"lr": self.lr, "buffers": list(self.buffers)}

    def load_state_dict(self, state: dict) -> None:
        self.lr = state["lr"]
        self.buffers = list(state["buffers"])
