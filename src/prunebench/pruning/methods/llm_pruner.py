"""LLM-Pruner's importance (Ma et al., NeurIPS 2023), its element-wise first-order term: a unit's
importance is Σ |w · ∂L/∂w| over the weights that produce it (a neuron's rows of the MLP's first
layers, a head's rows of the attention's input projections), the gradient that of the
calibration loss. Attention heads and MLP neurons are physically removed, the same fraction of
each group; the embedding width stays, as in LLM-Pruner's block-wise setting (`kinds` may add
it). On a CNN the units are its channels and the weights their filters.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from prunebench.allowed import integer
from prunebench.pruning.methods.base import ChannelKnobs, Context, Method, Scored, knob
from prunebench.pruning.methods.registry import register
from prunebench.training.loops import cross_entropy
from prunebench.training.models import Layers


@dataclass(frozen=True)
class LLMPrunerKnobs(ChannelKnobs):
    calibration: int = knob(128, integer(1))  # training examples (sequences) the gradient is taken on


@register("llm_pruner")
class LLMPruner(Method):
    unit = "channel"
    kinds = ("channel", "head")
    Knobs = LLMPrunerKnobs

    def score(self, model: nn.Module, layers: Layers, ctx: Context) -> Scored:
        model.eval()
        model.zero_grad(set_to_none=True)
        for x, y in ctx.examples(self.knobs.calibration):
            (cross_entropy(model(x), y) * len(x)).backward()  # the sum over examples: one scale for all
        scores = {}
        for name, layer in layers.items():
            weight, bias = layer.weight, layer.bias
            assert weight.grad is not None, f"{name} took no part in the loss"
            taylor = (weight * weight.grad).abs().flatten(1).sum(1)
            if bias is not None and bias.grad is not None:
                taylor = taylor + (bias * bias.grad).abs()
            scores[name] = taylor.detach()
        model.zero_grad(set_to_none=True)
        return Scored(scores)
