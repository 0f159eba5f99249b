import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from prunebench.params import Measure
from prunebench.pruning.steps import prune_step
from prunebench.training import inputs, measure, models

from helpers import context, make_method, small_cnn


@pytest.mark.parametrize("name", list(models.MODELS))
def test_macs_of_conv_and_linear_match_torch_flop_counter(name):
    """Attention's products, which the flop counter misses on the CPU's fused kernel: test_macs.py.
    Image models on digits-sized input; the GPT on 16 byte tokens, whose count is per token."""
    language = models.MODELS[name].task == "language_modelling"
    data = (
        {"vocab_size": 256, "sequence_length": 16}
        if language
        else {"in_channels": 1, "num_classes": 10, "image_size": 8}
    )
    spec = models.spec({"name": name}, **data)
    model, shape = models.build(spec).eval(), inputs.shape_of_spec(spec)
    per_layer = measure.layer_macs(model, shape)
    modules = dict(model.named_modules())
    weighted = sum(v for k, v in per_layer.items() if isinstance(modules.get(k), (torch.nn.Conv2d, torch.nn.Linear)))
    with FlopCounterMode(display=False) as counter:
        model(inputs.example(shape))
    assert weighted * (shape.length if language else 1) == counter.get_total_flops() / 2


def test_sparse_macs_count_only_nonzero_weights():
    model = small_cnn()
    dense = measure.layer_macs(model, (1, 8, 8))
    model = prune_step(model, make_method("magnitude", {}), 0.0, 0.5, context()).model
    prunable = sum(v for k, v in dense.items() if k in models.prunable_layers(model))
    assert measure.costs(model, (1, 8, 8))[0]["macs_sparse"] == pytest.approx(
        sum(dense.values()) - prunable / 2, rel=1e-3
    )
    assert measure.count_nonzero(model, (1, 8, 8)) < measure.count_params(model, (1, 8, 8))


def test_profile_reports_every_cost(cpu):
    result = measure.profile(small_cnn(), (1, 8, 8), Measure(latency_batch=8, rounds=1, min_run_time=0.01), cpu)
    assert set(result) == {"params", "nonzeros", "macs", "macs_sparse", "latency_ms"}
    assert result["latency_ms"] > 0 and result["macs"] == result["macs_sparse"]
