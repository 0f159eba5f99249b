"""Issue 35: the exact loss change of removing each unit, prefix-cached where fx traces the model,
and the oracle method with its fidelity table."""

import copy
import statistics

import pytest
import torch
from torch import nn

from prunebench.layouts import FIDELITY_TABLE
from prunebench.pruning import coupling, criteria, surgery
from prunebench.pruning.exact import loss_changes
from prunebench.pruning.methods import METHODS
from prunebench.pruning.methods.oracle import SKIPPED
from prunebench.pruning.methods.taylor import spearman
from prunebench.pruning.steps import prune_step
from prunebench.training import models

from helpers import context, make_method, small_cnn

SHAPE = (3, 32, 32)


def resnet() -> nn.Module:
    torch.manual_seed(0)
    model = models.build(models.spec({"name": "resnet20"}, 3, 10, 32)).eval()
    with torch.no_grad():  # BatchNorm away from its initial state, so that every unit matters differently
        for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
            bn.weight.uniform_(0.2, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
            bn.running_mean.uniform_(-0.2, 0.2)
    return model


def loss_after_removing(model: nn.Module, root: str, unit: int, x, y) -> float:
    removed = surgery.remove(copy.deepcopy(model), {root: [unit]}, SHAPE)
    with torch.no_grad():
        return float(nn.functional.cross_entropy(removed(x), y) - nn.functional.cross_entropy(model(x), y))


def test_the_prefix_cached_loss_changes_are_the_whole_forwards_and_the_units_removed():
    model = resnet()
    torch.manual_seed(1)
    x, y = torch.randn(8, *SHAPE), torch.randint(0, 10, (8,))
    points = coupling.gate_points(model, SHAPE)
    some = {root: torch.tensor([0, 3, 5]) for root in points}
    cached, was_cached = loss_changes(model, points, [(x, y)], some, chunk=2)
    whole, not_cached = loss_changes(model, points, [(x, y)], some, chunk=3, traced=False)
    assert was_cached and not not_cached
    for root in points:
        assert torch.allclose(cached[root], whole[root], atol=1e-6), root
    residual = next(g for g in coupling.groups(model, SHAPE) if len(g.members) > 1)  # a stage's coupled channels
    assert float(cached[residual.root][1]) == pytest.approx(
        loss_after_removing(model, residual.root, 3, x, y), abs=1e-5
    )
    single = "layers.4.conv1"
    assert float(cached[single][2]) == pytest.approx(loss_after_removing(model, single, 5, x, y), abs=1e-5)


class ReadsTheBatchSizeEarly(nn.Module):
    """fx traces it, but its re-run after the gates reshapes to the batch size read before them:
    stacked copies would be folded wrongly, and the check must send it to the whole forward."""

    def __init__(self):
        super().__init__()
        self.conv, self.norm, self.fc = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4 * 30 * 30, 10)

    def forward(self, x):
        n = x.shape[0]
        return self.fc(torch.relu(self.norm(self.conv(x))).reshape(n, -1))


class Branches(nn.Module):
    """fx cannot trace it: Python control flow on a tensor's value."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(4, 10)

    def forward(self, x):
        h = torch.relu(self.conv(x))
        if h.sum() > 0:
            h = h * 2
        return self.fc(h.mean((2, 3)))


@pytest.mark.parametrize("build", [ReadsTheBatchSizeEarly, Branches])
def test_a_model_the_trace_cannot_rerun_gets_the_whole_forward_and_the_same_answer(build):
    torch.manual_seed(0)
    model = build().eval()
    x, y = torch.randn(6, *SHAPE), torch.randint(0, 10, (6,))
    points = coupling.gate_points(model, SHAPE)
    found, cached = loss_changes(model, points, [(x, y)], chunk=3)
    assert not cached
    (root,) = points
    for unit in range(4):
        assert float(found[root][unit]) == pytest.approx(loss_after_removing(model, root, unit, x, y), abs=1e-5)


def test_the_oracle_removes_the_units_whose_removal_costs_least():
    model = small_cnn()
    torch.manual_seed(2)
    data = [(torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,)))]
    ctx = context(data)
    points = coupling.gate_points(model, (1, 8, 8), ("channel", "head"))
    deltas, _ = loss_changes(model, points, data)
    method = make_method("oracle", {"batches": 1, "fidelity": False})
    pruned = prune_step(copy.deepcopy(model), method, 0.0, 0.25, ctx)
    everything = sorted((float(d), root, i) for root, values in deltas.items() for i, d in enumerate(values))
    removed = {(root, i) for _, root, i in everything[: round(0.25 * len(everything))]}
    for group in coupling.groups(model, (1, 8, 8)):
        lost = sum(1 for root, _ in removed if root == group.root)
        assert models.output_units(pruned.model.get_submodule(group.root)) == group.size - lost, group.root


def test_the_fidelity_table_has_every_channel_criterion_on_the_same_batches():
    model = small_cnn()
    with torch.no_grad():  # BatchNorm scales of 1 would give slimming constant scores, which have no ρ
        for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
            bn.weight.uniform_(0.5, 1.5)
    torch.manual_seed(3)
    data = [(torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))) for _ in range(2)]
    scored = make_method("oracle", {"batches": 2}).score(model, {}, context(data))
    rows = {row["criterion"]: row for row in scored.tables[FIDELITY_TABLE]}
    channel = {name for name, cls in METHODS.items() if cls.unit == "channel"} - set(SKIPPED)
    assert set(rows) == channel | {"oracle"}
    assert rows["oracle"]["rho_global"] == 1.0 and rows["oracle"]["seconds"] > 0
    assert rows["l1_channel"]["rho_global"] == rows["l1_channel_global"]["rho_global"]  # the same scores
    for name, row in rows.items():
        if "refused" in row:
            assert "\n" not in row["refused"]
            continue
        assert -1 <= row["rho_global"] <= 1 and row["seconds"] >= 0, name
    assert scored.metrics["oracle_prefix_cached"] == 1.0


def test_fidelity_is_spearmans_rho_of_the_criterions_unit_scores_with_the_loss_changes():
    model = small_cnn()
    torch.manual_seed(4)
    data = [(torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,)))]
    scored = make_method("oracle", {"batches": 1, "criteria": ["l1_channel"]}).score(model, {}, context(data))
    rows = {row["criterion"]: row for row in scored.tables[FIDELITY_TABLE]}
    assert set(rows) == {"oracle", "l1_channel"}
    found = coupling.groups(model, (1, 8, 8))
    l1 = {
        g.root: g.unit_scores({n: criteria.filter_l1(models.prunable_layers(model)[n]) for n in g.members})
        for g in found
    }
    deltas = {g.root: scored.scores[g.root] for g in found}
    everything = spearman(torch.cat([l1[r] for r in deltas]), torch.cat(list(deltas.values())))
    per_layer = sorted(spearman(l1[r], deltas[r]) for r in deltas)
    assert rows["l1_channel"]["rho_global"] == pytest.approx(everything, abs=1e-12)
    assert rows["l1_channel"]["rho_layer_median"] == pytest.approx(statistics.median(per_layer), abs=1e-12)
    assert rows["l1_channel"]["units"] == sum(g.size for g in found)
