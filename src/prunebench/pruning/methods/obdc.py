"""OBD-C, Optimal Brain Damage on channels as torch-pruning and EigenDamage (Wang et al., ICML
2019) compute it: a unit's score is Σ w² · F over the rows that produce it, F the diagonal of the
Fisher information, estimated as the sum over calibration examples of each example's squared
weight gradient, averaged over the batches; the labels are drawn from the model's own predicted
distribution (the true Fisher, not the empirical one), from the method's seed. Every group loses
the same fraction."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from typing import cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from prunebench.allowed import integer
from prunebench.pruning.methods.base import ChannelKnobs, Context, Method, Scored, knob
from prunebench.pruning.methods.registry import register
from prunebench.pruning.selection import member_scores
from prunebench.pruning.slices import reduce, slices
from prunebench.training.loops import cross_entropy
from prunebench.training.models import Layer, Layers


def per_example_gradients(layer: Layer, inputs: Tensor, grad_output: Tensor) -> Tensor:
    """Each example's gradient of the layer's weight, [examples, out, in · kernel], from its input
    and the gradient at its output (batch, tokens and positions summed over within an example)."""
    n = len(inputs)
    if isinstance(layer, nn.Linear):
        return torch.einsum(
            "nto,nti->noi", grad_output.reshape(n, -1, grad_output.shape[-1]), inputs.reshape(n, -1, inputs.shape[-1])
        )
    groups = layer.groups
    padding = cast(tuple[int, ...], layer.padding)  # a string padding is refused (`OBDC.refuses`)
    patches = F.unfold(inputs, layer.kernel_size, layer.dilation, padding, layer.stride)  # [n, in·k, positions]
    patches = patches.view(n, groups, -1, patches.shape[-1])
    grads = grad_output.reshape(n, groups, -1, patches.shape[-1])
    return torch.einsum("ngol,ngil->ngoi", grads, patches).reshape(n, layer.out_channels, -1)


@contextmanager
def _recorded(layers: dict[str, Layer], fisher: dict[str, Tensor], scale: float) -> Iterator[None]:
    """Add scale · Σ_examples (per-example gradient)² of each layer's weight to `fisher` in every backward pass."""

    def hook(name: str, layer: Layer):
        def forward(_module: nn.Module, inputs: tuple, output: Tensor) -> None:
            x = inputs[0].detach()

            def backward(grad: Tensor) -> None:
                per_example = per_example_gradients(
                    layer, x, grad.detach() * len(x)
                )  # the mean loss: each example's own
                fisher[name] = fisher.get(name, 0) + scale * per_example.square().sum(0).view_as(layer.weight)

            output.register_hook(backward)

        return forward

    handles = [layer.register_forward_hook(hook(name, layer)) for name, layer in layers.items()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def fisher_diagonals(
    model: nn.Module, layers: dict[str, Layer], batches: list[tuple[Tensor, Tensor]]
) -> dict[str, Tensor]:
    """Σ over each batch's examples of the squared per-example gradient of each layer's weight (the
    loss the mean cross-entropy at the batch's labels), averaged over the batches."""
    fisher: dict[str, Tensor] = {}
    model.eval()
    with _recorded(layers, fisher, 1 / len(batches)):
        for x, y in batches:
            model.zero_grad(set_to_none=True)
            cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    return fisher


@torch.no_grad()
def sampled_labels(model: nn.Module, x: Tensor, generator: torch.Generator) -> Tensor:
    """A label per prediction drawn from the model's softmax (the true Fisher's labels)."""
    logits = model(x)
    probabilities = logits.float().softmax(-1).flatten(0, -2).cpu()
    return torch.multinomial(probabilities, 1, generator=generator).view(logits.shape[:-1]).to(x.device)


EPS = 1e-10  # added to F, as torch-pruning does: units the loss never reached rank by the size of their weights


@register("obdc")
class OBDC(Method):
    unit = "channel"

    @dataclass(frozen=True)
    class Knobs(ChannelKnobs):
        batches: int = knob(4, integer(1))  # calibration batches from the training split

    def refuses(self, model: nn.Module, ctx: Context) -> str | None:
        for name, layer in model.named_modules():
            if isinstance(layer, nn.Conv2d) and isinstance(layer.padding, str):
                return f"obdc unfolds convolutions into patches, and {name} has padding={layer.padding!r}"
        return None

    def score(self, model: nn.Module, layers: Layers, ctx: Context) -> Scored:
        owned = slices(model, ctx.input_shape, self.kinds)
        producing = {
            p.module: cast(Layer, model.get_submodule(p.module))
            for pieces in owned.values()
            for p in pieces
            if p.role == "out"
        }
        batches = []
        for x, _ in islice(ctx.batches(), self.knobs.batches):
            x = x.to(ctx.device)
            batches.append((x, sampled_labels(model, x, ctx.generator)))
        fisher = fisher_diagonals(model, producing, batches)
        scores = {}
        for group, pieces in owned.items():
            values = [
                (
                    piece,
                    (piece.vectors(model).square() * (fisher[piece.module][piece.positions].flatten(1) + EPS)).sum(1),
                )
                for piece in pieces
                if piece.role == "out"
            ]
            scores[group.root] = reduce(values, group.size)
        return Scored(member_scores(owned, scores))
