import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from prunebench.params import Measure
from prunebench.pruning.steps import prune_step
from prunebench.training import measure, models

from helpers import IMAGE_MODELS, context, make_method, small_cnn


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_macs_of_conv_and_linear_match_torch_flop_counter(name):
    """Attention's products, which the flop counter misses on the CPU's fused kernel: test_macs.py."""
    model = models.build(models.spec({"name": name}, 1, 10, 8)).eval()
    per_layer = measure.layer_macs(model, (1, 8, 8))
    modules = dict(model.named_modules())
    weighted = sum(v for k, v in per_layer.items() if isinstance(modules.get(k), (torch.nn.Conv2d, torch.nn.Linear)))
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 1, 8, 8))
    assert weighted == counter.get_total_flops() / 2


def test_sparse_macs_count_only_nonzero_weights():
    model = small_cnn()
    dense = measure.layer_macs(model, (1, 8, 8))
    model = prune_step(model, make_method("magnitude", {}), 0.0, 0.5, context()).model
    prunable = sum(v for k, v in dense.items() if k in models.prunable_layers(model))
    assert measure.costs(model, (1, 8, 8))[0]["macs_sparse"] == pytest.approx(
        sum(dense.values()) - prunable / 2, rel=1e-3
    )
    assert measure.count_nonzero(model) < measure.count_params(model)


def test_profile_reports_every_cost(cpu):
    result = measure.profile(small_cnn(), (1, 8, 8), Measure(latency_batch=8, rounds=1, min_run_time=0.01), cpu)
    assert set(result) == {"params", "nonzeros", "macs", "macs_sparse", "latency_ms"}
    assert result["latency_ms"] > 0 and result["macs"] == result["macs_sparse"]
