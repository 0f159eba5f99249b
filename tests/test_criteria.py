"""Issue 35: the leaderboards' criteria (FPGM, OBD-C, DepGraph's group norm, HRank, BN-Taylor),
each checked against torch-pruning 1.6's own implementation on the same model and batches where it
has one, against a direct computation where it has not, and run on every registered model.

Torch-Pruning settings, in every comparison: local (per group) scores, `group_reduction="mean"`,
`normalizer=None` (a normaliser rescales a group's scores and leaves its order: per-group pruning
chooses the same channels), on the dependency graph `coupling.graph` builds."""

import warnings

import pytest
import torch
import torch_pruning as tp
from torch import nn

from prunebench.pruning import coupling
from prunebench.pruning.methods.group_norm import regularize
from prunebench.pruning.methods.obdc import sampled_labels
from prunebench.pruning.methods.taylor import gate_derivatives, spearman
from prunebench.pruning.slices import slices
from prunebench.pruning.steps import prune_step
from prunebench.training import measure, models

from helpers import IMAGE_MODELS, context, gpt_context, make_method, tiny_gpt

SHAPE = (3, 32, 32)
CRITERIA = ["fpgm", "obdc", "group_norm", "hrank", "bn_taylor"]


def resnet(seed: int = 0) -> nn.Module:
    """resnet20 with BatchNorm parameters away from their initial 1 and 0, so that they matter."""
    torch.manual_seed(seed)
    model = models.build(models.spec({"name": "resnet20"}, 3, 10, 32)).eval()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            nn.init.uniform_(module.weight, 0.2, 1.5)
            nn.init.normal_(module.bias, 0.0, 0.2)
    return model


def batches(count: int = 2, size: int = 16, seed: int = 1) -> list:
    torch.manual_seed(seed)
    return [(torch.randn(size, *SHAPE), torch.randint(0, 10, (size,))) for _ in range(count)]


def torch_pruning_scores(model: nn.Module, importance) -> dict:
    """torch-pruning's importance of every group of ours, from its pruning group of the root."""
    built = coupling.graph(model, SHAPE)
    found = {}
    for group in coupling.groups(model, SHAPE):
        root = model.get_submodule(group.root)
        found[group.root] = importance(built.get_pruning_group(root, coupling.out_fn(root), list(range(group.size))))
    return found


def assert_same_channels(ours: dict, theirs: dict, fraction: float = 0.5) -> None:
    """Per group: Spearman ρ ≥ 0.99 and the same channels removed at `fraction`."""
    assert ours.keys() >= theirs.keys()
    for root, reference in theirs.items():
        score = ours[root].float()
        assert spearman(score, reference.float()) >= 0.99, root
        removed = int(len(score) * fraction)
        assert set(score.argsort()[:removed].tolist()) == set(reference.argsort()[:removed].tolist()), root


def test_group_norm_is_torch_prunings_group_magnitude_importance():
    model = resnet()
    ours = make_method("group_norm").score(model, {}, context(input_shape=SHAPE)).scores
    theirs = torch_pruning_scores(model, tp.importance.GroupMagnitudeImportance(p=2, normalizer=None))
    assert_same_channels(ours, theirs)
    for root, reference in theirs.items():
        assert torch.allclose(ours[root], reference, rtol=1e-5)


def test_fpgm_with_torch_prunings_settings_is_its_fpgm_importance():
    model = resnet()
    method = make_method("fpgm", {"between": "squares", "group": True})
    ours = method.score(model, {}, context(input_shape=SHAPE)).scores
    theirs = torch_pruning_scores(model, tp.importance.FPGMImportance(p=2, normalizer=None))
    assert_same_channels(ours, theirs)


def test_fpgm_as_the_paper_sums_each_filters_distances_to_the_layers_other_filters():
    model = resnet()
    scores = make_method("fpgm").score(model, {}, context(input_shape=SHAPE)).scores
    filters = model.get_submodule("layers.0.conv1").weight.detach().flatten(1).double()
    by_hand = torch.stack([(filters - f).norm(dim=1).sum() for f in filters]).float()
    assert torch.allclose(scores["layers.0.conv1"], by_hand, rtol=1e-6)
    theirs = torch_pruning_scores(model, tp.importance.FPGMImportance(p=2, normalizer=None))
    assert spearman(scores["layers.0.conv1"], theirs["layers.0.conv1"]) < 0.99  # why `between` is a knob


def test_obdc_is_torch_prunings_obdc_importance_on_the_same_sampled_labels():
    """torch-pruning's OBDCImportance records inputs and output gradients with hooks that its
    `_prepare_model` attaches; in 1.6.1 that function fails (`_downstream_node_as_root_if_attention`
    returns None for a group without attention), so the test attaches the same hooks to the same
    layers (every producing conv and linear of every group). Labels: drawn from the model's softmax
    with generator seed 3, the same for both, 2 batches of 16."""
    model = resnet()
    generator = torch.Generator().manual_seed(3)
    labelled = [(x, sampled_labels(model, x, generator)) for x, _ in batches()]
    importance = tp.importance.OBDCImportance(normalizer=None, num_classes=10)
    built = coupling.graph(model, SHAPE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's notice on register_backward_hook, which torch-pruning uses
        for group in built.get_all_groups(root_module_types=[nn.Conv2d, nn.Linear]):
            for dep, _ in group:
                layer = dep.target.module
                if dep.handler in coupling.OUT_CHANNEL_FNS and layer not in importance.modules:
                    importance.modules.append(layer)
                    layer.register_forward_pre_hook(importance._save_input)
                    layer.register_backward_hook(importance._save_grad_output)
        for x, y in labelled:
            model.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            importance.step()
        theirs = torch_pruning_scores(model, importance)
    importance._rm_hooks(model)
    ours = make_method("obdc", {"batches": 2}).score(model, {}, context(labelled, seed=3, input_shape=SHAPE)).scores
    assert_same_channels(ours, theirs)


def test_group_sparse_learning_adds_torch_prunings_regulariser_gradient():
    model = resnet()
    x, y = batches(1)[0]
    nn.functional.cross_entropy(model(x), y).backward()
    pruner = tp.pruner.GroupNormPruner(
        model, torch.randn(1, *SHAPE), tp.importance.GroupMagnitudeImportance(p=2), reg=1e-3, ignored_layers=[model.fc]
    )
    before = {name: p.grad.clone() for name, p in model.named_parameters()}
    pruner.regularize(model, alpha=16)
    theirs = {name: p.grad.clone() for name, p in model.named_parameters()}
    for name, p in model.named_parameters():
        p.grad.copy_(before[name])
    regularize(model, slices(model, SHAPE, ("channel",)), 1e-3, 16)
    changed = [name for name, p in model.named_parameters() if p.dim() > 1 and not torch.equal(p.grad, before[name])]
    assert len(changed) > 20
    for name, p in model.named_parameters():
        if p.dim() > 1 or name.endswith("weight"):  # torch-pruning leaves biases (bias=False)
            assert torch.allclose(p.grad, theirs[name], rtol=1e-5, atol=1e-9), name


def test_group_sparse_learning_shrinks_the_weakest_units_most():
    model, ctx = resnet(), context(batches(4), input_shape=SHAPE)
    plain = make_method("group_norm").score(model, {}, ctx).scores
    method = make_method("group_norm", {"sparsity": 0.05, "sparsity_batches": 4, "sparsity_epochs": 2, "lr": 0.05})
    trained = method.score(model, {}, ctx).scores
    weak, strong = plain["layers.0.conv1"].argmin(), plain["layers.0.conv1"].argmax()
    ratio = trained["layers.0.conv1"] / plain["layers.0.conv1"]
    assert ratio[weak] < ratio[strong]


def test_hrank_is_the_mean_rank_of_each_channels_map_after_its_batchnorm():
    model = resnet()
    with torch.no_grad():
        model.get_submodule("layers.0.conv1").weight[3] = 0  # a zero filter: its map is the constant β, rank 1
    data = batches(2, 8)
    scores = make_method("hrank", {"batches": 2}).score(model, {}, context(data, input_shape=SHAPE)).scores
    maps = []
    handle = model.get_submodule("layers.0.bn1").register_forward_hook(
        lambda _m, _i, out: maps.append(out.clone())
    )  # ReLU works in place
    with torch.no_grad():
        for x, _ in data:
            model(x)
    handle.remove()
    by_hand = torch.linalg.matrix_rank(torch.cat(maps)).double().mean(0).float()
    assert torch.equal(scores["layers.0.conv1"], by_hand)
    assert scores["layers.0.conv1"][3] == 1 and scores["layers.0.conv1"].max() == 32


def test_bn_taylor_is_the_squared_gate_gradient_of_each_batch_averaged():
    """(Σ γ·∂L/∂γ + β·∂L/∂β)² from the parameters' gradients equals the squared loss gradient of a
    gate on the BatchNorms' outputs (Taylor order 1, another code path), batch by batch."""
    model, data = resnet(), batches(3, 8)
    scores = make_method("bn_taylor", {"batches": 3}).score(model, {}, context(data, input_shape=SHAPE)).scores
    points = coupling.gate_points(model, SHAPE, ("channel",))
    squares = [gate_derivatives(model, points, [batch], 1) for batch in data]
    for group in coupling.groups(model, SHAPE):
        by_gate = sum(found[group.root][0].square() for found in squares) / len(data)
        assert torch.allclose(scores[group.root], by_gate, rtol=1e-4, atol=1e-12), group.root


def model_ctx(name: str):
    torch.manual_seed(0)
    model = models.build(models.spec({"name": name}, *SHAPE[:1], 10, SHAPE[1])).eval()
    return model, context([(torch.randn(4, *SHAPE), torch.randint(0, 10, (4,)))], input_shape=SHAPE)


@pytest.mark.parametrize("method", CRITERIA)
@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_every_model_prunes_with_every_criterion_or_is_refused_in_one_line(name, method):
    model, ctx = model_ctx(name)
    criterion = make_method(method)
    if why := criterion.refuses(model, ctx):
        assert "\n" not in why and method in why
        without_batchnorm = not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
        assert (method == "bn_taylor" and without_batchnorm) or (method, name) == ("hrank", "mlp")  # no feature maps
        return
    before = sum(measure.layer_macs(model, SHAPE).values())
    pruned = prune_step(model, criterion, 0.0, 0.5, ctx).model
    assert pruned(torch.randn(2, *SHAPE)).shape == (2, 10)
    assert sum(measure.layer_macs(pruned, SHAPE).values()) < before


@pytest.mark.parametrize("method", CRITERIA)
def test_every_criterion_prunes_the_gpts_heads_and_neurons_or_is_refused_in_one_line(method):
    model, ctx = tiny_gpt(), gpt_context()
    criterion = make_method(method)
    if why := criterion.refuses(model, ctx):
        assert method == "bn_taylor" and "no BatchNorm" in why and "\n" not in why
        return
    neurons = model.get_submodule("blocks.0.mlp.fc1").out_features
    pruned = prune_step(model, criterion, 0.0, 0.5, ctx).model
    heads = {name: m.num_heads for name, m in pruned.named_modules() if hasattr(m, "num_heads")}
    assert heads and all(count == 2 for count in heads.values())  # 4 heads each, half removed
    if method != "hrank":  # HRank ranks maps: a neuron's output per token is a vector, kept whole
        assert pruned.get_submodule("blocks.0.mlp.fc1").out_features == neurons // 2
