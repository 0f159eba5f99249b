"""Interval propagation is sound: for any input inside the box, every intermediate value and
every adjoint (∂ sum of outputs / ∂ value) lies inside the interval computed for it."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import fx, nn

from prunebench.pruning import interval
from prunebench.pruning.interval import Interval, Propagation
from prunebench.training import models


class PoolNet(nn.Module):
    """Max pooling (overlapping windows with padding, and plain 2×2) and a functional ReLU."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.pool2 = nn.MaxPool2d(2)
        self.fc = nn.Linear(4 * 2 * 2, 3)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv(x)))
        x = self.pool2(self.conv2(x).relu())
        return self.fc(x.view(x.size(0), -1))


NETWORKS = {  # name -> (factory, input shape)
    "mlp": (lambda: models.build(models.spec({"name": "mlp", "hidden": [12, 6]}, 1, 5, 4)), (1, 4, 4)),
    "cnn": (lambda: models.build(models.spec({"name": "cnn", "width": 4, "hidden": 6}, 1, 5, 6)), (1, 6, 6)),
    "resnet20": (lambda: models.build(models.spec({"name": "resnet20"}, 3, 4, 8)), (3, 8, 8)),
    "pooling": (PoolNet, (2, 8, 8)),
}


def point_values(graph: fx.GraphModule, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Every node's value at the input x, and its adjoint ∂(sum of outputs)/∂value, by autograd."""
    values: dict[str, torch.Tensor] = {}

    class Recorder(fx.Interpreter):
        def run_node(self, node):
            result = super().run_node(node)
            if node.op != "output" and isinstance(result, torch.Tensor) and result.requires_grad:
                result.retain_grad()
                values[node.name] = result
            return result

    x = x.clone().requires_grad_(True)
    Recorder(graph).run(x).sum().backward()
    return ({k: v.detach() for k, v in values.items()}, {k: v.grad for k, v in values.items()})


def randomize_batchnorm(model: nn.Module, generator: torch.Generator) -> None:
    """Non-trivial eval-mode BatchNorm: random statistics and (some negative) scales."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            c = module.num_features
            module.running_mean.copy_(torch.randn(c, generator=generator))
            module.running_var.copy_(torch.rand(c, generator=generator) + 0.5)
            module.weight.data.copy_(torch.randn(c, generator=generator))
            module.bias.data.copy_(torch.randn(c, generator=generator))


def inside(point: torch.Tensor, box: Interval) -> bool:
    slack = 1e-9 * (1 + box.magnitude)
    return bool(((point >= box.lo - slack) & (point <= box.hi + slack)).all())


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(sorted(NETWORKS)),
    seed=st.integers(0, 2**31 - 1),
    spread=st.floats(0.0, 2.0),
    samples=st.integers(1, 4),
)
def test_values_and_adjoints_stay_inside_their_intervals(name, seed, spread, samples):
    factory, shape = NETWORKS[name]
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = factory()
    randomize_batchnorm(model, generator)
    graph = interval.trace(model)
    centre = torch.randn(1, *shape, generator=generator, dtype=torch.float64)
    radius = spread * torch.rand(1, *shape, generator=generator, dtype=torch.float64)
    box = Interval(centre - radius, centre + radius)
    found = Propagation(graph, box)
    for _ in range(samples):
        x = box.lo + torch.rand(box.lo.shape, generator=generator, dtype=torch.float64) * box.width
        values, adjoints = point_values(graph, x)
        assert set(values) == {n for n, v in found.values.items() if isinstance(v, Interval)}
        for node, value in values.items():
            assert inside(value, found.values[node]), f"{name}: value of {node} outside its interval"
            assert inside(adjoints[node], found.adjoints[node]), f"{name}: adjoint of {node} outside its interval"


def test_a_point_box_gives_the_exact_values_and_gradients():
    factory, shape = NETWORKS["cnn"]
    torch.manual_seed(0)
    graph = interval.trace(factory())
    x = torch.randn(1, *shape, dtype=torch.float64)
    found = Propagation(graph, Interval(x, x))
    values, adjoints = point_values(graph, x)
    for node, value in values.items():
        assert torch.allclose(found.values[node].lo, value) and torch.allclose(found.values[node].hi, value)
        if node != "relu":  # the stem's ReLU: a pre-activation exactly 0 has derivative interval [0, 0]
            assert torch.allclose(found.adjoints[node].mid, adjoints[node])


def test_relu_clamps_both_ends_at_zero():
    graph = fx.symbolic_trace(nn.Sequential(nn.ReLU()))
    found = Propagation(graph, Interval(torch.tensor([[-3.0, -1.0, 2.0]]), torch.tensor([[-1.0, 4.0, 5.0]])))
    source, relu = (node.name for node in list(graph.graph.nodes)[:2])
    out = found.values[relu]
    assert out.lo.tolist() == [[0.0, 0.0, 2.0]] and out.hi.tolist() == [[0.0, 4.0, 5.0]]
    assert found.adjoints[source].lo.tolist() == [[0.0, 0.0, 1.0]] and found.adjoints[source].hi.tolist() == [
        [0.0, 1.0, 1.0]
    ]


def test_an_unsupported_operation_is_named():
    graph = interval.trace(nn.Sequential(nn.Linear(3, 3), nn.Sigmoid()))
    with pytest.raises(ValueError, match=r"1 \(Sigmoid\) is not supported"):
        Propagation(graph, Interval(torch.zeros(1, 3, dtype=torch.float64), torch.ones(1, 3, dtype=torch.float64)))
