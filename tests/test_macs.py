"""MACs counted right: every product of convolutions, Linear layers, bare projection parameters and
attention (QKᵀ and AV), whether PyTorch runs a fused kernel or not, against hand counts; and the
rest as thop counts it, so that a CNN's count is thop's to the bit."""

from __future__ import annotations

import pytest
import torch
from foreign_models import tiny_vit
from torch import nn

from prunebench.training import macs, measure, models
from prunebench.training.models.transformer import Attention

# The tiny ViT of the issue, counted by hand per example: 16 patches + the class token = 17 tokens
# of width 32, 4 heads, an MLP of 64, 2 layers, 10 classes.
TOKENS, WIDTH, HIDDEN = 17, 32, 64
PER_LAYER = {
    "in-projection": TOKENS * WIDTH * 3 * WIDTH,  # 52,224
    "QKᵀ": TOKENS * TOKENS * WIDTH,  # 9,248: per head 17 × 17 × 8, 4 heads
    "AV": TOKENS * TOKENS * WIDTH,  # 9,248
    "out-projection": TOKENS * WIDTH * WIDTH,  # 17,408
    "MLP": 2 * TOKENS * WIDTH * HIDDEN,  # 69,632
}
PATCHES = 16 * (2 * 2) * WIDTH  # 2,048: each 2×2 patch of the one channel onto 32 features
HEAD = WIDTH * 10  # 320: the class token only
PRODUCTS = 2 * sum(PER_LAYER.values()) + PATCHES + HEAD
NORMS = 5 * TOKENS * WIDTH * 4  # two LayerNorms per layer and a last one, 4 per element as thop counts them


def test_the_hand_count_is_the_issues():
    assert PRODUCTS == 317_888 and NORMS == 10_880


@pytest.mark.parametrize("grad", [False, True])
def test_the_tiny_vit_costs_its_hand_count_whichever_attention_path_runs(grad):
    model = tiny_vit().eval()  # nn.TransformerEncoderLayer: under no_grad PyTorch takes its fused path
    with torch.set_grad_enabled(grad):
        found = measure.layer_macs(model, (1, 8, 8))
    assert sum(found.values()) == PRODUCTS + NORMS
    adapted = models.adapt(tiny_vit()).eval()  # the same model on prunebench's attention
    with torch.no_grad():
        assert sum(measure.layer_macs(adapted, (1, 8, 8)).values()) == PRODUCTS + NORMS


def test_attention_products_are_charged_to_the_attention_module():
    model = models.adapt(tiny_vit()).eval()
    found = measure.layer_macs(model, (1, 8, 8))
    attention = {k: v for k, v in found.items() if macs.module_of(k) == "encoder.layers.0.self_attn"}
    assert attention == {"encoder.layers.0.self_attn:attention": PER_LAYER["QKᵀ"] + PER_LAYER["AV"]}
    assert found["encoder.layers.0.self_attn.qkv"] == PER_LAYER["in-projection"]
    assert found["encoder.layers.0.self_attn.proj"] == PER_LAYER["out-projection"]


def test_a_multi_head_attention_block_alone_under_no_grad():
    block = Attention(dim=24, num_heads=3, head_dim=5).eval()  # attention width 15, apart from the 24
    tokens = 7
    with torch.no_grad():
        found = macs.count(block, torch.zeros(1, tokens, 24))
    assert found == {
        "qkv": tokens * 24 * 3 * 15,
        "proj": tokens * 15 * 24,
        "<model>:attention": 3 * tokens * tokens * (5 + 5),
    }


def test_products_outside_modules_count_where_they_run():
    class Bare(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.randn(6, 4))
            self.inner = nn.Linear(6, 2)

        def forward(self, x):
            h = x @ self.weight.T  # a bare projection parameter
            return self.inner(torch.relu(h) @ torch.ones(6, 6))

    found = macs.count(Bare(), torch.zeros(1, 3, 4))
    assert found == {"inner": 3 * 6 * 2, "<model>:bmm": 3 * 4 * 6 + 3 * 6 * 6} or found == {
        "inner": 3 * 6 * 2,
        "<model>:mm": 3 * 4 * 6 + 3 * 6 * 6,
    }


@pytest.mark.parametrize("name", ["cnn", "mlp", "resnet20", "vgg11_bn", "resnet18", "mobilenet_v3_large", "vgg11"])
def test_a_cnn_counts_as_thop_counts_it_to_the_bit(name):
    import copy

    import thop

    shape = (1, 28, 28) if name == "mlp" else (3, 32, 32)
    model = models.build(models.spec({"name": name}, shape[0], 10, shape[1])).eval()
    probe = copy.deepcopy(model)
    _, _, tree = thop.profile(probe, inputs=(torch.zeros(1, *shape),), verbose=False, ret_layer_info=True)
    expected: dict[str, float] = {}

    def walk(node: dict, prefix: str) -> None:
        for key, (ops, _params, children) in node.items():
            walk(children, prefix + key + ".") if children else expected.__setitem__(prefix + key, float(ops))

    walk(tree, "")
    found = measure.layer_macs(model, shape)
    assert list(found) == list(expected) and found == expected
