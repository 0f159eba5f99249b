"""What a model costs: parameters, nonzeros, MACs (dense and sparsity-aware), latency.

MACs are counted by `prunebench.training.macs`: every product, attention's included, and the
rest as thop counts it. A model's costs are counted as its field counts them: an image model's
MACs per example and every parameter; a language model's (it reads `Tokens`) MACs per token, at
the data's fixed sequence length, and only the weights of its blocks' linear layers, as the LLM
papers count them (embeddings, the output layer, norms and biases are not counted).

Sparsity-aware MACs scale each Conv/Linear layer's MACs by the fraction of its weights that are
nonzero (every weight is used the same number of times in a forward pass), so unstructured
pruning shows up there; dense kernels do not run faster for it, which is why measured latency
stands next to it. Attention's products have no weights: masks never reduce them.
"""

from __future__ import annotations

import torch
from torch import nn

from prunebench.params import Measure
from prunebench.training import macs
from prunebench.training.inputs import InputShape, Tokens, example
from prunebench.training.models import prunable_layers


def counted(model: nn.Module, input_shape: InputShape) -> dict[str, torch.Tensor]:
    """The parameters a count of parameters counts, by name: every one of an image model; the
    weights of a language model's blocks' linear layers (its prunable layers)."""
    if isinstance(input_shape, Tokens):
        return {f"{name}.weight": layer.weight for name, layer in prunable_layers(model).items()}
    return dict(model.named_parameters())


def count_params(model: nn.Module, input_shape: InputShape) -> int:
    return sum(p.numel() for p in counted(model, input_shape).values())


def count_nonzero(model: nn.Module, input_shape: InputShape) -> int:
    return sum(int(torch.count_nonzero(p)) for p in counted(model, input_shape).values())


def layer_macs(model: nn.Module, input_shape: InputShape) -> dict[str, float]:
    """MACs per term (`macs.count`) of one example, or of one token of a sequence: every
    childless module, and the products modules with children run themselves (an attention
    module's QKᵀ and AV)."""
    found = macs.count(model, example(input_shape))
    if isinstance(input_shape, Tokens):
        return {term: value / input_shape.length for term, value in found.items()}
    return found


def sparse_layer_macs(model: nn.Module, per_layer: dict[str, float]) -> dict[str, float]:
    """Each term's MACs, a Conv/Linear layer's scaled by the density of its weight."""
    modules = dict(model.named_modules())
    scaled = {}
    for name, ops in per_layer.items():
        module = modules.get(name)  # None for the products of a module with children
        weight = getattr(module, "weight", None)
        if isinstance(module, (nn.Conv2d, nn.Linear)) and weight is not None:
            ops *= float(torch.count_nonzero(weight)) / weight.numel()
        scaled[name] = ops
    return scaled


def costs(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Size and MACs from one counted pass: totals (params, nonzeros, macs, macs_sparse), and per
    Conv/Linear layer its sparsity-aware MACs and nonzero weights."""
    dense = layer_macs(model, input_shape)
    sparse = sparse_layer_macs(model, dense)
    layers = {
        name: {"macs": sparse[name], "nonzeros": int(torch.count_nonzero(m.weight))}
        for name, m in model.named_modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    }
    totals = {
        "params": count_params(model, input_shape),
        "nonzeros": count_nonzero(model, input_shape),
        "macs": sum(dense.values()),
        "macs_sparse": sum(sparse.values()),
    }
    return totals, layers


@torch.no_grad()
def latency_ms(
    model: nn.Module, input_shape: tuple[int, ...], batch: int, min_run_time: float, device: torch.device
) -> float:
    """Median wall time of one forward pass over a batch (torch.utils.benchmark, which
    synchronises CUDA), after one untimed pass, on this process's threads. The pipeline's
    latencies come from the deploy stage, which times a point's models side by side
    (`deploy.timing`); this one times a model alone (`prunebench evaluate`, benchmarks)."""
    from torch.utils import benchmark  # here: it imports setuptools, and most stages time nothing

    model.eval()
    x = example(input_shape, batch, device, random=True)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    timer = benchmark.Timer("model(x)", globals={"model": model, "x": x}, num_threads=torch.get_num_threads())
    timer.timeit(1)
    return timer.blocked_autorange(min_run_time=min_run_time).median * 1000


def profile(model: nn.Module, input_shape: tuple[int, ...], cfg: Measure, device: torch.device) -> dict[str, float]:
    """Size, MACs and latency of a model; `cfg` is the params.yaml `measure` section."""
    latency = latency_ms(model, input_shape, cfg.latency_batch, cfg.min_run_time * cfg.rounds, device)
    return costs(model, input_shape)[0] | {"latency_ms": latency}
