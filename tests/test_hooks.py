import torch
from torch import nn

from prunebench.pruning.coupling import Gate, gate_points, groups
from prunebench.pruning.hooks import gated, leaf_calls, signal_grads
from prunebench.training import models

from helpers import small_cnn


def test_signal_grads_are_the_squared_loss_gradients_of_each_channel_at_its_gate():
    model = small_cnn()
    points = gate_points(model, (1, 8, 8))
    x = torch.randn(3, 1, 8, 8)
    with signal_grads(model, points) as found:
        model(x).square().sum().backward()
    with torch.no_grad():
        fc_in = model.pool(model.down(model.block(model.stem(x)))).flatten(1)
    fc_out = model.fc(fc_in).requires_grad_()  # the signal at the fc group's gate: fc's output
    grad = torch.autograd.grad(model.head(torch.relu(fc_out)).square().sum(), fc_out)[0]
    assert torch.allclose(found["fc"][0], grad.square().sum(0))
    assert set(found) == set(points) and all(len(found[root]) == len(gates) for root, gates in points.items())
    with torch.no_grad():
        model(x)
    assert all(len(found[root]) == len(gates) for root, gates in points.items())  # hooks are gone after the block


def test_gates_find_the_features_of_token_outputs_and_scale_whole_heads():
    model = models.build(models.spec({"name": "vit", "dim": 16, "depth": 1, "heads": 4}, 1, 10, 8)).eval()
    points = gate_points(model, (1, 8, 8))
    kinds = {group.root: group.kind for group in groups(model, (1, 8, 8))}
    assert sorted(kinds.values()) == ["channel", "head", "width"]
    heads = next(root for root, kind in kinds.items() if kind == "head")
    assert points[heads] == [Gate("blocks.0.attn.proj", (1, 4, 4), input=True)]
    x = torch.randn(2, 1, 8, 8)
    expected = model(x)
    gate = torch.ones(4)
    gate[2] = 0  # the third head silenced: its 4 features of the attention output are zero where proj reads them
    seen = []
    neuron = next(root for root, kind in kinds.items() if kind == "channel")
    with gated(model, points, {heads: gate, neuron: torch.ones(32)}):
        hook = model.blocks[0].attn.proj.register_forward_pre_hook(lambda _m, inputs: seen.append(inputs[0]))
        changed = model(x)  # the gate's hook runs first, then this one sees what proj reads
    hook.remove()
    assert seen[0].shape == (2, 17, 16) and seen[0][..., 8:12].abs().max() == 0 and seen[0][..., :8].abs().min() > 0
    assert not torch.allclose(changed, expected)
    with gated(model, points, {neuron: torch.ones(32)}):  # a gate of ones on (batch, tokens, features) outputs
        assert torch.equal(model(x), expected)


def test_leaf_calls_sees_every_leaf_call_in_order_and_leaves_the_outputs_alone():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Sequential(nn.Linear(4, 2)))
    x = torch.randn(5, 3)
    expected = model(x)
    seen = []
    with leaf_calls(model, lambda name, inputs, output: seen.append((name, inputs[0].shape)) or "not an output"):
        got = model(x)
    assert [name for name, _ in seen] == ["0", "1", "2.0"] and seen[2][1] == (5, 4)
    assert torch.equal(got, expected)
    with leaf_calls(model, lambda name, *_: seen.append(name), also=["2"]):
        model(x)
    assert seen[3:] == ["0", "1", "2.0", "2"]
