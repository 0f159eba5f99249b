"""Vision transformers: nn.MultiheadAttention adapted without changing the function, heads and width
removed physically, head gates exact, a pruned ViT reloaded with its head counts and exported, timm
models built offline from a local file."""

from __future__ import annotations

import copy

import pytest
import torch
from foreign_models import tiny_vit
from torch import nn

from prunebench.deploy import export
from prunebench.params import Model
from prunebench.pruning import coupling, surgery
from prunebench.pruning.exact import loss_changes
from prunebench.pruning.hooks import gated
from prunebench.pruning.steps import prune_step
from prunebench.training import modelfile, models, pretrained
from prunebench.training.models.transformer import MultiheadSelfAttention

from helpers import context, make_method

SHAPE = (1, 8, 8)


def vit(**knobs) -> nn.Module:
    torch.manual_seed(0)
    return models.build(models.spec({"name": "vit", **knobs}, 1, 10, 8)).eval()


def test_multihead_attention_is_adapted_without_changing_what_the_model_computes():
    original = tiny_vit().eval()
    adapted = models.adapt(copy.deepcopy(original)).eval()
    assert all(isinstance(layer.self_attn, MultiheadSelfAttention) for layer in adapted.encoder.layers)
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():  # the original takes PyTorch's fused path here, the adapted one never does
        assert torch.allclose(adapted(x), original(x), atol=1e-5)
    layer, tokens = original.encoder.layers[0], torch.randn(2, 5, 32)
    padding = torch.tensor([[False] * 4 + [True], [False] * 5])
    causal = nn.Transformer.generate_square_subsequent_mask(5)
    mine = models.adapt(copy.deepcopy(layer)).eval()
    for kwargs in ({"src_key_padding_mask": padding}, {"src_mask": causal, "is_causal": True}):
        assert torch.allclose(mine(tokens, **kwargs), layer(tokens, **kwargs), atol=1e-5)


def test_the_groups_of_a_vit_are_its_width_its_neurons_and_its_heads():
    found = coupling.groups(vit(depth=2, heads=4, dim=32), SHAPE)
    assert [(g.kind, g.root, g.size) for g in found] == [
        ("width", "patch_embed", 32),
        ("channel", "blocks.0.mlp.fc1", 64),
        ("channel", "blocks.1.mlp.fc1", 64),
        ("head", "blocks.0.attn.qkv", 4),
        ("head", "blocks.1.attn.qkv", 4),
    ]
    assert found[0].members == (
        "patch_embed",
        "blocks.0.attn.proj",
        "blocks.0.mlp.fc2",
        "blocks.1.attn.proj",
        "blocks.1.mlp.fc2",
    )
    assert coupling.frozen_groups(vit(), SHAPE) == []


def test_removing_heads_cuts_their_rows_and_columns_and_keeps_the_others_exactly():
    model = vit()
    x = torch.randn(3, *SHAPE)
    attention = model.blocks[0].attn
    head_width = attention.head_dim
    kept_rows = [c * 4 * head_width + h * head_width + j for c in range(3) for h in (0, 3) for j in range(head_width)]
    qkv_before, proj_before = attention.qkv.weight.detach().clone(), attention.proj.weight.detach().clone()
    reference = copy.deepcopy(model)
    gate = torch.tensor([1.0, 0.0, 0.0, 1.0])  # heads 1 and 2 silenced where proj reads them
    points = coupling.gate_points(reference, SHAPE)
    with torch.no_grad(), gated(reference, points, {"blocks.0.attn.qkv": gate}):
        expected = reference(x)
    surgery.remove(model, {"blocks.0.attn.qkv": [1, 2]}, SHAPE)
    assert attention.num_heads == 2 and attention.attn_dim == 2 * head_width
    assert torch.equal(attention.qkv.weight, qkv_before[kept_rows])
    columns = [h * head_width + j for h in (0, 3) for j in range(head_width)]
    assert torch.equal(attention.proj.weight, proj_before[:, columns])
    with torch.no_grad():
        assert torch.allclose(model(x), expected, atol=1e-6)  # removing a head is silencing it


def test_a_head_gate_at_zero_is_exactly_the_head_removed():
    model = vit()
    x, y = torch.randn(8, *SHAPE), torch.randint(0, 10, (8,))
    points = coupling.gate_points(model, SHAPE)
    delta = loss_changes(model, points, [(x, y)], {"blocks.1.attn.qkv": torch.tensor([2])})[0]["blocks.1.attn.qkv"][0]
    loss = torch.no_grad()(lambda m: float(nn.functional.cross_entropy(m(x), y)))
    removed = surgery.remove(copy.deepcopy(model), {"blocks.1.attn.qkv": [2]}, SHAPE)
    assert float(delta) == pytest.approx(loss(removed) - loss(model), abs=1e-6)


def test_width_removal_narrows_the_stream_tokens_and_norms_and_leaves_the_heads():
    model = vit(dim=32, heads=4)
    surgery.remove(model, {"patch_embed": list(range(0, 32, 4))}, SHAPE)
    assert model.cls_token.shape == (1, 1, 24) and model.pos_embed.shape == (1, 17, 24)
    assert model.norm.normalized_shape == (24,) and model.blocks[0].norm1.normalized_shape == (24,)
    assert model.blocks[0].attn.qkv.weight.shape == (96, 24) and model.blocks[0].attn.num_heads == 4
    assert model(torch.randn(2, *SHAPE)).shape == (2, 10)


@pytest.mark.parametrize(
    "entry", [{"method": "l1_channel"}, {"method": "taylor", "order": 2}, {"method": "l1_channel_global"}]
)
def test_a_pruned_vit_reloads_with_its_head_counts_and_agrees_in_onnx_runtime(tmp_path, entry):
    model = vit()
    x = torch.randn(16, *SHAPE)
    ctx = context([(x, torch.randint(0, 10, (16,)))])
    pruned = prune_step(model, make_method("m", entry), 0.0, 0.5, ctx).model.eval()
    heads = [block.attn.num_heads for block in pruned.blocks]
    spec = models.spec({"name": "vit"}, 1, 10, 8)
    modelfile.save(tmp_path / "m.pt", pruned, spec)
    loaded = modelfile.load_pruned(tmp_path / "m.pt")
    assert [block.attn.num_heads for block in loaded.blocks] == heads
    with torch.no_grad():
        assert torch.equal(loaded(x), pruned(x))
    check = export.check(loaded, export.to_onnx(loaded, x[:1]), x, 1e-4)
    assert check.problem is None and check.agreement == 1.0


def test_a_timm_vit_builds_offline_and_takes_its_weights_from_a_local_file(tmp_path):
    from safetensors.torch import save_file

    # what the Hub's file holds: ImageNet's 1000 classes on a 224 × 224 grid (patch 16: 14 × 14 + 1 tokens)
    torch.manual_seed(0)
    hub = models.build(models.spec({"name": "timm:vit_tiny_patch16_224", "depth": 2}, 3, 1000, 224))
    save_file({k: v.contiguous() for k, v in hub.state_dict().items()}, tmp_path / "model.safetensors")
    spec = models.spec(
        {"name": "timm:vit_tiny_patch16_224", "depth": 2, "weights": str(tmp_path / "model.safetensors")}, 3, 10, 32
    )
    model = pretrained.initial(spec).eval()
    state = model.state_dict()
    assert model.pos_embed.shape == (1, 5, 192)  # the position embedding resampled to the 2 × 2 grid
    assert torch.equal(state["blocks.1.mlp.fc2.weight"], hub.state_dict()["blocks.1.mlp.fc2.weight"])
    assert state["head.weight"].shape == (10, 192)  # 10 classes here: the head starts afresh
    weights = Model(name=spec["name"], weights=spec["weights"], knobs={"depth": 2})
    assert pretrained.weights_preprocessing(weights) == {
        "mean": (0.5, 0.5, 0.5),
        "std": (0.5, 0.5, 0.5),
        "crop_pct": 0.9,
        "interpolation": "bicubic",
    }
    missing = spec | {"weights": str(tmp_path / "nowhere.safetensors")}
    with pytest.raises(models.WeightsError, match=r"no such file: download model.safetensors from https://hugging"):
        pretrained.initial(missing)
    cnn = models.build(models.spec({"name": "timm:resnet10t"}, 3, 10, 32)).eval()
    assert cnn(torch.randn(2, 3, 32, 32)).shape == (2, 10) and coupling.groups(cnn, (3, 32, 32))


def test_a_timm_deit_loses_heads_reloads_with_them_and_keeps_its_preprocessing(tmp_path):
    """DeiT is timm's VisionTransformer with its own pretrained configuration (ImageNet's mean and
    std, crop 0.9, bicubic): its heads go like a ViT's, and the head counts survive the model file."""
    torch.manual_seed(0)
    spec = models.spec({"name": "timm:deit_tiny_patch16_224", "depth": 1, "patch_size": 4}, 3, 10, 16)
    model = models.build(spec).eval()
    x = torch.randn(8, 3, 16, 16)
    kinds = {group.kind for group in coupling.groups(model, (3, 16, 16))}
    assert {"head", "channel", "width"} <= kinds
    ctx = context([(x, torch.randint(0, 10, (8,)))], input_shape=(3, 16, 16))
    method = make_method("heads", {"method": "l1_channel", "kinds": ["head"]})
    pruned = prune_step(model, method, 0.0, 0.5, ctx).model.eval()
    assert [block.attn.num_heads for block in pruned.blocks] == [1]  # half of 3 heads: 1.5 rounds to 2 removed
    modelfile.save(tmp_path / "deit.pt", pruned, spec)
    loaded = modelfile.load_pruned(tmp_path / "deit.pt")
    assert [block.attn.num_heads for block in loaded.blocks] == [1]
    with torch.no_grad():
        assert torch.equal(loaded(x), pruned(x))
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp_path / "model.safetensors")
    weights = Model(name=spec["name"], weights=str(tmp_path / "model.safetensors"), knobs={"depth": 1, "patch_size": 4})
    assert pretrained.weights_preprocessing(weights) == {
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
        "crop_pct": 0.9,
        "interpolation": "bicubic",
    }


def test_an_unknown_timm_model_is_one_line():
    with pytest.raises(models.ModelError, match=r"^model.name = 'timm:vit_nope': timm .* has no such model"):
        models.family("timm:vit_nope")


def test_every_default_method_prunes_the_tiny_vit_or_refuses_it_in_one_line():
    """In-process, every default method of params.yaml; end to end through DVC: test_pipeline.py."""
    import yaml

    from prunebench.params import MethodEntry
    from prunebench.pruning import inspection, methods

    from helpers import ROOT

    torch.manual_seed(0)
    base = models.adapt(tiny_vit()).eval()
    x = torch.randn(16, *SHAPE)
    ctx = context([(x, torch.randint(0, 10, (16,)))] * 2)
    ctx.sensitivity = [  # a made-up sweep: every layer and group loses accuracy with the ratio
        {"seed": 0, "layer": name, "kind": kind, "ratio": r, "accuracy": 0.9 - r / 2}
        for kind, names in (
            ("unstructured", list(models.prunable_layers(base))),
            ("structured", [g.label for g in coupling.groups(base, SHAPE)]),
        )
        for name in names
        for r in (0.0, 0.5, 0.9)
    ]
    refused = {}
    for key, entry in yaml.safe_load((ROOT / "params.yaml").read_text())["methods"].items():
        method = methods.create(MethodEntry.of(key, entry))
        if why := inspection.refusal(method, base, ctx):
            refused[key] = why
            continue
        pruned = prune_step(copy.deepcopy(base), method, 0.0, 0.5, ctx)
        assert pruned.model(x).shape == (16, 10), key
    assert set(refused) == {"intra_kernel", "slimming", "interval_adjoint"}
    assert all("\n" not in why for why in refused.values())


@pytest.mark.parametrize(("kind", "changed"), [("head", "heads"), ("channel", "neurons"), ("width", "width")])
def test_the_kinds_knob_prunes_one_kind_of_unit_alone(kind, changed):
    pruned = prune_step(vit(), make_method("m", {"method": "l1_channel", "kinds": [kind]}), 0.0, 0.5, context()).model
    sizes = {
        "heads": [block.attn.num_heads for block in pruned.blocks],
        "neurons": [block.mlp.fc1.out_features for block in pruned.blocks],
        "width": [pruned.patch_embed.out_channels],
    }
    before = {"heads": [4, 4], "neurons": [64, 64], "width": [32]}
    assert {name: sizes[name] != before[name] for name in sizes} == {name: name == changed for name in sizes}
