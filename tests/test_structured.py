"""Issue 3: every registered model with every structured method; kernel and pattern masks."""

import pytest
import torch
from torch import nn

from prunebench.pruning import coupling
from prunebench.pruning.methods.kernels import patterns
from prunebench.pruning.steps import prune_step
from prunebench.training import measure, modelfile, models
from prunebench.training.models import prunable_layers

from helpers import IMAGE_MODELS, context, make_method

SHAPE = (3, 32, 32)
STRUCTURED = ["l1_channel", "l1_channel_global", "random_channel", "slimming", "kernel", "intra_kernel"]


def model_ctx(name: str):
    torch.manual_seed(0)
    model = models.build(models.spec({"name": name}, *SHAPE[:1], 10, SHAPE[1])).eval()
    return model, context([(torch.randn(4, *SHAPE), torch.randint(0, 10, (4,)))], input_shape=SHAPE)


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_l1_channel_halves_every_model_and_survives_a_save_load_round_trip(tmp_path, name):
    model, ctx = model_ctx(name)
    x = torch.randn(2, *SHAPE)
    before = sum(measure.layer_macs(model, SHAPE).values())
    pruned = prune_step(model, make_method("l1_channel", {}), 0.0, 0.5, ctx).model
    after = sum(measure.layer_macs(pruned, SHAPE).values())
    assert pruned(x).shape == (2, 10)
    assert before / after > (2.5 if name == "resnet18" else 1.5)
    spec = models.spec({"name": name}, 3, 10, 32)
    modelfile.save(tmp_path / "m.pt", pruned, spec)
    loaded, _, _ = modelfile.load(tmp_path / "m.pt")
    assert torch.equal(pruned.eval()(x), loaded.eval()(x))


@pytest.mark.parametrize("method", STRUCTURED)
@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_every_model_prunes_with_every_structured_method_and_still_trains(name, method):
    model, ctx = model_ctx(name)
    nonzeros = measure.count_nonzero(model, SHAPE)  # before: weight methods prune in place
    knobs = {"sparsity": 1e-4, "sparsity_batches": 1} if method == "slimming" else {}
    if method == "slimming" and not any(isinstance(m, nn.BatchNorm2d) for m in model.modules()):
        with pytest.raises(ValueError, match="no BatchNorm"):  # torchvision's vgg11/vgg16, and mlp
            prune_step(model, make_method(method, knobs), 0.0, 0.5, ctx)
        return
    pruned = prune_step(model, make_method(method, knobs), 0.0, 0.5, ctx).model
    out = pruned.train()(torch.randn(4, *SHAPE))
    assert out.shape == (4, 10)
    out.square().mean().backward()
    assert all(p.grad is not None for p in pruned.parameters() if p.requires_grad)
    has_3x3 = any(isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) for m in pruned.modules())
    if method == "intra_kernel" and not has_3x3:  # mlp: patterns exist only inside 3×3 kernels
        assert measure.count_nonzero(pruned, SHAPE) == nonzeros
    else:
        assert measure.count_nonzero(pruned, SHAPE) < nonzeros


def test_kernel_pruning_removes_whole_kernels():
    model, ctx = model_ctx("vgg11_bn")
    masks = prune_step(model, make_method("kernel", {}), 0.0, 0.4, ctx).masks
    for name, layer in prunable_layers(model).items():
        if isinstance(layer, nn.Conv2d):
            kernels = masks[f"{name}.weight"].flatten(2)
            assert torch.all(kernels.all(-1) | ~kernels.any(-1))  # each kernel wholly kept or wholly gone
            assert int((~kernels.any(-1)).sum()) == round(0.4 * kernels.shape[0] * kernels.shape[1])


def test_intra_kernel_keeps_the_best_library_pattern_in_every_3x3_kernel():
    model, ctx = model_ctx("resnet20")
    weights = {n: m.weight.detach().clone() for n, m in prunable_layers(model).items()}
    masks = prune_step(model, make_method("intra_kernel", {}), 0.0, 0.5, ctx).masks
    library = patterns(round(9 * 0.5)).bool()  # 4 of 9 weights, containing the centre, connected
    assert len(library) > 1 and library[:, 4].all()
    for name, layer in prunable_layers(model).items():
        mask = masks[f"{name}.weight"]
        if isinstance(layer, nn.Conv2d) and layer.kernel_size == (3, 3):
            kernels = mask.reshape(-1, 9)
            assert (kernels.sum(1) == 4).all()
            energy = weights[name].reshape(-1, 9).square()
            best = (energy @ library.float().T).max(1).values
            assert torch.allclose((energy * kernels).sum(1), best)
        else:
            assert mask.all()  # 1×1 convs and linear layers stay dense


def test_l1_channel_global_respects_the_per_layer_maximum():
    model, ctx = model_ctx("vgg11_bn")
    before = {n: m.weight.shape[0] for n, m in prunable_layers(model).items()}
    method = make_method("l1_channel_global", {"max_ratio": 0.6})
    pruned = prune_step(model, method, 0.0, 0.5, ctx).model
    after = {n: m.weight.shape[0] for n, m in prunable_layers(pruned).items()}
    assert all(after[n] >= before[n] - int(0.6 * before[n]) for n in before)
    assert sum(before.values()) - sum(after.values()) == round(0.5 * sum(before.values()))
    assert len({round(1 - after[n] / before[n], 2) for n in before}) > 1  # layers lose different fractions


def test_slimming_ranks_by_bn_scale_and_sparsity_training_shrinks_the_scales():
    model, ctx = model_ctx("vgg11_bn")
    with torch.no_grad():
        model[0][1].weight.copy_(torch.linspace(0.01, 1.0, 64))  # the first BN's γ, ascending
    method = make_method("slimming", {})
    scores = method.score(model, prunable_layers(model), ctx).scores
    assert torch.equal(scores["0.0"], model[0][1].weight.detach().abs())
    trained, ctx2 = model_ctx("vgg11_bn")
    batches = [(torch.randn(8, *SHAPE), torch.randint(0, 10, (8,))) for _ in range(5)]
    ctx2 = context(batches, input_shape=SHAPE)
    plain = make_method("slimming", {})
    plain.score(model_ctx("vgg11_bn")[0], prunable_layers(trained), ctx2)
    sparse = make_method("slimming", {"sparsity": 0.01, "sparsity_epochs": 3, "lr": 0.1})
    sparse.score(trained, prunable_layers(trained), ctx2)
    gammas = torch.cat([m.weight.detach().abs() for m in trained.modules() if isinstance(m, nn.BatchNorm2d)])
    assert gammas.mean() < 1.0  # initialised at 1, pulled down by the L1 penalty


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_interval_adjoint_prunes_every_model_it_can_trace(name):
    """One iteration of the retention schedule; a model with an operation interval arithmetic
    does not cover (mobilenet_v3_large: hardswish, squeeze-excitation; vit: attention) stops with
    its name."""
    from prunebench.layouts import counts as counts_of
    from prunebench.pruning import retention
    from prunebench.pruning.steps import prune_to_counts

    model, ctx = model_ctx(name)
    sizes = coupling.group_sizes(model, SHAPE)
    counts = counts_of(retention.table(sizes, 0.8, 1, lambda c: sum(c.values()) / sum(sizes.values()), 0.01)[1])
    method = make_method("interval_adjoint", {})
    if name in ("mobilenet_v3_large", "vit"):
        with pytest.raises(ValueError, match="not supported"):
            prune_to_counts(model, method, counts, ctx)
        return
    pruned = prune_to_counts(model, method, counts, ctx).model
    assert pruned(torch.randn(2, *SHAPE)).shape == (2, 10)
    assert coupling.group_sizes(pruned, SHAPE) == counts
