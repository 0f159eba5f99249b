import torch
from torch import nn

from prunebench.pruning.hooks import capture, leaf_calls
from prunebench.training.models import prunable_layers

from helpers import small_cnn


def test_capture_records_outputs_and_their_loss_gradients_then_removes_itself():
    model = small_cnn()
    layers = prunable_layers(model)
    x = torch.randn(3, 1, 8, 8)
    with capture(layers) as records:
        logits = model(x)
        loss = logits.square().sum()
        loss.backward()
    assert torch.allclose(records.outputs["stem.0"][0], model.stem[0](x))
    with torch.no_grad():
        fc_in = model.pool(model.down(model.block(model.stem(x)))).flatten(1)
    assert torch.allclose(records.outputs["fc"][0], model.fc(fc_in))  # before the in-place ReLU
    fc_out = records.outputs["fc"][0].requires_grad_()
    assert torch.allclose(
        records.grads["fc"][0], torch.autograd.grad(model.head(torch.relu(fc_out)).square().sum(), fc_out)[0]
    )
    assert set(records.grads) == set(layers)
    with torch.no_grad():
        model(x)
    assert len(records.outputs["stem.0"]) == 1  # hooks are gone after the block


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
