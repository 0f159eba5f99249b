"""Issue 5: exact Taylor derivatives of the loss with respect to channel gates."""

from dataclasses import replace

import psutil
import pytest
import torch
import torch_pruning as tp
from torch import nn

from prunebench.pruning import coupling
from prunebench.pruning.coupling import Gate
from prunebench.pruning.exact import loss_changes, traced_model
from prunebench.pruning.hooks import gated
from prunebench.pruning.methods import Scored
from prunebench.pruning.methods.taylor import (
    DIRECTION_BYTES,
    activation_bytes,
    gate_derivatives,
    plan,
    scoring_memory,
    spearman,
    taylor_estimate,
)
from prunebench.pruning.steps import prune_step
from prunebench.training import models
from prunebench.training.batches import batches
from prunebench.training.loops import fit
from prunebench.training.models import prunable_layers

from helpers import context, make_method, small_cnn


class Polynomial(nn.Module):
    """h = (a, b)·x, gated; out = h0³ + 2·h1² + h0·h1: the loss is a known polynomial in each gate."""

    def __init__(self, a: float, b: float):
        super().__init__()
        self.lin = nn.Linear(1, 2, bias=False)
        with torch.no_grad():
            self.lin.weight.copy_(torch.tensor([[a], [b]]))

    def forward(self, x):
        h = self.lin(x)
        return h[:, 0] ** 3 + 2 * h[:, 1] ** 2 + h[:, 0] * h[:, 1]


def test_the_three_orders_equal_the_closed_form_of_a_polynomial_loss():
    a, b = 1.5, -0.7
    batches = [(torch.ones(1, 1), torch.zeros(1))]
    points = {"lin": [Gate("lin", (1, 2, 1))]}
    d = gate_derivatives(Polynomial(a, b), points, batches, 3, loss_fn=lambda out, y: out.sum())["lin"]
    expected = torch.tensor(
        [
            [3 * a**3 + a * b, 4 * b**2 + a * b],  # ∂L/∂m at m = 1, per gate
            [6 * a**3, 4 * b**2],
            [6 * a**3, 0.0],
        ]
    )
    assert torch.allclose(d, expected, atol=1e-5)
    exact = torch.tensor([-(a**3) - a * b, -2 * b**2 - a * b])  # L(m_c = 0) − L(1); cubic, so order 3 is exact
    assert torch.allclose(taylor_estimate(d, 3), exact, atol=1e-5)
    assert torch.allclose(taylor_estimate(d, 1), -expected[0])


def test_first_order_by_one_backward_pass_equals_forward_mode_along_each_gate():
    model = small_cnn()
    points = coupling.gate_points(model, (1, 8, 8))
    batches = [(torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))) for _ in range(2)]
    reverse = gate_derivatives(model, points, batches, 1)
    forward = gate_derivatives(model, points, batches, 2)  # forward mode along each gate
    for root in points:
        assert reverse[root].shape == (1, forward[root].shape[1])
        assert torch.allclose(reverse[root][0], forward[root][0], atol=1e-6)
    assert all(p.grad is None for p in model.parameters())


def test_the_chunks_follow_the_memory_budget_and_not_the_values():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    x = torch.randn(3, 4)
    # outputs after the gate at "0", float32: 3×8 (Linear) + 3×8 (ReLU) + 3×2 (Linear) numbers
    assert activation_bytes(model, ["0"], x) == (24 + 24 + 6) * 4
    assert activation_bytes(model, ["2"], x) == 6 * 4
    per_direction = DIRECTION_BYTES[2] * 216
    assert plan(model, ["0"], x, 2, 4 * per_direction + 1) == (3, 3)  # and one more for what a chunk shares
    assert plan(model, ["0"], x, 3, 4 * per_direction) == (1, 2)  # 20× per direction: in pieces
    assert plan(model, ["0"], x, 2, per_direction) == (1, 2)  # one direction of 3 examples does not fit: pieces
    assert plan(model, ["0"], x, 2, 1) == (1, 1)  # one example, one direction, whatever the budget
    points = {"0": [Gate("0", (1, 8, 1))]}
    batches = [(x, torch.randint(0, 2, (3,)))]
    one = gate_derivatives(model, points, batches, 3, memory=1)["0"]  # one example and one direction at a time
    whole = gate_derivatives(model, points, batches, 3, memory=2**30)["0"]
    assert one.shape == (3, 8) and torch.allclose(one, whole, atol=1e-6)
    assert 0 < scoring_memory(torch.device("cpu")) < psutil.virtual_memory().total


@pytest.mark.parametrize(("layer", "channel"), [("stem.0", 2), ("block.conv1", 5), ("down.0", 0), ("fc", 7)])
def test_zeroing_a_gate_is_exactly_removing_the_channel(layer, channel):
    model = small_cnn()
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.bias.uniform_(-0.5, 0.5)
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))
    points = coupling.gate_points(model, (1, 8, 8))
    root = next(g.root for g in coupling.groups(model, (1, 8, 8)) if layer in g.members)
    delta = loss_changes(model, points, [(x, y)], {root: torch.tensor([channel])})[0][root][0]
    loss = torch.no_grad()(lambda: float(nn.functional.cross_entropy(model(x), y)))
    base = loss()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.zeros(1, 1, 8, 8))
    module = prunable_layers(model)[layer]
    fn = tp.prune_conv_out_channels if isinstance(module, nn.Conv2d) else tp.prune_linear_out_channels
    graph.get_pruning_group(module, fn, idxs=[channel]).prune()
    assert float(delta) == pytest.approx(loss() - base, abs=1e-5)


def test_spearman():
    a = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert spearman(a, a * 10) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert spearman(torch.tensor([1.0, 2.0, 2.0, 3.0]), torch.tensor([1.0, 2.0, 3.0, 4.0])) == pytest.approx(
        0.9487, abs=1e-4
    )


@pytest.fixture(scope="module")
def trained(splits, default_params):
    cpu = torch.device("cpu")
    torch.manual_seed(0)
    model = models.build(models.spec({"name": "cnn", "width": 16, "hidden": 32}, 1, 10, 8))
    loader = batches(splits.train, splits, default_params.data, cpu, train=True)
    fit(
        model,
        loader,
        batches(splits.val, splits, default_params.data, cpu),
        replace(default_params.train, epochs=3),
        cpu,
    )
    return model.eval(), loader


@pytest.mark.parametrize("order", [1, 2, 3])
def test_the_least_important_channel_costs_less_than_the_most_important(trained, order):
    model, loader = trained
    ctx = context(loader)
    method = make_method("t", {"method": "taylor", "order": order, "batches": 2, "normalize": False})
    scores = method.score(model, prunable_layers(model), ctx).scores
    points = coupling.gate_points(model, (1, 8, 8))
    by_channel = [(float(s), root, c) for root in points for c, s in enumerate(scores[root])]
    (_, low_root, low), (_, high_root, high) = min(by_channel), max(by_channel)
    batches = [next(iter(loader))]
    low_delta = loss_changes(model, points, batches, {low_root: torch.tensor([low])})[0][low_root][0]
    high_delta = loss_changes(model, points, batches, {high_root: torch.tensor([high])})[0][high_root][0]
    assert abs(low_delta) < abs(high_delta)


def test_fidelity_and_gradient_flow_are_reported(trained):
    model, loader = trained
    method = make_method(
        "t", {"method": "taylor", "order": 2, "batches": 1, "fidelity_channels": 40, "gradient_flow": True}
    )
    scored = method.score(model, prunable_layers(model), context(loader))
    fidelity = scored.metrics["taylor_fidelity"]
    assert set(fidelity) == {"order1", "order2", "order3"} and all(-1 <= v <= 1 for v in fidelity.values())
    assert fidelity["order2"] > fidelity["order1"]
    assert len(scored.tables["fidelity"]) == 40
    layers = {row["layer"] for row in scored.tables["gradient_flow"]}
    assert layers == set(coupling.gate_points(model, (1, 8, 8)))


def test_global_ranking_keeps_min_channels_and_removes_the_exact_count():
    model = small_cnn()
    method = make_method("l1g", {"method": "taylor", "min_channels": 2})
    method.score = lambda model, layers, ctx: Scored(
        {n: torch.arange(float(m.weight.shape[0])) for n, m in layers.items()}
    )
    before = {n: m.weight.shape[0] for n, m in prunable_layers(model).items()}
    pruned = prune_step(model, method, 0.0, 0.7, context()).model
    after = {n: m.weight.shape[0] for n, m in prunable_layers(pruned).items()}
    groups = [list(g.members) for g in coupling.groups(model, (1, 8, 8))]
    removed = sum(before[g[0]] - after[g[0]] for g in groups)
    assert removed == round(0.7 * sum(before[g[0]] for g in groups))
    assert min(after.values()) >= 2


def test_derivatives_work_through_torchvision_residual_blocks():
    from prunebench.training._torchvision import import_torchvision

    net = import_torchvision().models.resnet18(num_classes=10).eval()
    methods_before = {name: torch.Tensor.__dict__.get(name) for name in ("__iadd__", "__isub__", "__imul__")}
    points = coupling.gate_points(net, (3, 32, 32))
    root = "layer1.0.conv1"
    batch = [(torch.randn(2, 3, 32, 32), torch.randint(0, 10, (2,)))]
    d = gate_derivatives(net, {root: points[root]}, batch, 2, memory=2**30)[root]
    gate = torch.ones(d.shape[1], requires_grad=True)
    with gated(net, {root: points[root]}, {root: gate}):
        nn.functional.cross_entropy(net(batch[0][0]), batch[0][1]).backward()
    assert torch.allclose(d[0], gate.grad, atol=1e-6)
    assert {name: torch.Tensor.__dict__.get(name) for name in methods_before} == methods_before  # nothing patched


@pytest.mark.parametrize("order", [2, 3])
def test_orders_2_and_3_on_the_cached_prefix_equal_the_whole_forward(order):
    """Issue 35: where fx traces the model, only what depends on each group's gates is run."""
    torch.manual_seed(0)
    model = models.build(models.spec({"name": "resnet20"}, 3, 10, 8)).eval()
    points = coupling.gate_points(model, (3, 8, 8))
    some = {root: points[root] for root in list(points)[:: len(points) // 3]}  # early, middle and late groups
    batches = [(torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,)))]
    assert traced_model(model, some, batches[0], nn.functional.cross_entropy) is not None  # the prefix is cached
    cached = gate_derivatives(model, some, batches, order)
    whole = gate_derivatives(model, some, batches, order, prefix=False)
    for root in some:
        assert torch.allclose(cached[root], whole[root], rtol=1e-6, atol=1e-9), root
