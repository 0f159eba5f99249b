"""Interval-adjoint significance, the retention schedule and its iterations, and the deployment
rule."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from prunebench.params import MethodEntry
from prunebench.pruning import coupling, methods, retention
from prunebench.pruning.budget import ChannelCost
from prunebench.pruning.methods import Context
from prunebench.pruning.methods.interval_adjoint import input_box
from prunebench.pruning.steps import prune_step, prune_to_counts
from prunebench.training import modelfile, models

from helpers import context, make_method, small_cnn


def units(sizes: dict[str, int]):
    """The share of units a plan row keeps: the "units" budget."""
    return lambda counts: sum(counts.values()) / sum(sizes.values())


def test_the_retention_table_follows_the_formula():
    # the original configuration: hidden layers of 256 and 64 neurons, q = 0.8
    sizes = {"fc1": 256, "fc2": 64}
    rows = retention.table(sizes, q=0.8, max_iterations=30, kept=units(sizes), target=0.5)
    assert [(r["fc1"], r["fc2"]) for r in rows] == [(256, 64), (205, 51), (164, 41), (131, 33), (105, 26)]
    assert rows[3]["removed_fraction"] == pytest.approx(1 - 164 / 320) and rows[3]["removed_fraction"] < 0.5
    assert rows[-1]["removed_fraction"] == pytest.approx(1 - 131 / 320) and rows[-1]["kept_percent"] == pytest.approx(
        40.9375
    )


def test_the_mlp_on_mnist_has_the_original_schedule(default_params):
    mlp = models.build(models.spec({"name": "mlp"}, 1, 10, 28))  # 784-256-64-10
    assert coupling.group_sizes(mlp, (1, 28, 28)) == {"1": 256, "3": 64}
    assert default_params.schedule.retention.q == 0.8


def test_the_retention_table_keeps_one_unit_and_stops_at_the_limits():
    rows = retention.table({"a": 3, "b": 10}, q=0.1, max_iterations=30, kept=units({"a": 3, "b": 10}), target=0.01)
    assert [(r["a"], r["b"]) for r in rows] == [(3, 10), (1, 1)]  # round(0.3) = 0 → 1; then nothing is left to remove
    assert len(retention.table({"a": 100}, q=0.99, max_iterations=5, kept=units({"a": 100}), target=0.1)) == 6  # 0..5
    assert len(retention.table({"a": 100}, q=0.8, max_iterations=30, kept=units({"a": 100}), target=1.0)) == 1


def test_under_a_macs_budget_the_table_stops_at_the_deepest_point_and_each_point_takes_the_first_reaching_it():
    mlp = models.build(models.spec({"name": "mlp"}, 1, 10, 28))  # 784-256-64-10
    cost = ChannelCost(mlp, (1, 28, 28))
    kept = lambda counts: cost.kept(counts, "macs")  # noqa: E731
    rows = retention.table(cost.sizes, 0.8, 30, kept, target=1 / 8)
    assert rows[-1]["budget_kept"] <= 1 / 8 < rows[-2]["budget_kept"]  # stops at the first reaching 8×
    assert [r["budget_kept"] for r in rows] == sorted((r["budget_kept"] for r in rows), reverse=True)
    # MACs fall faster than units: 784·h1 + h1·h2 + h2·10, each hidden layer shrinking by q per iteration
    h1, h2 = retention.counts(rows[2]).values()
    assert rows[2]["budget_kept"] == pytest.approx(
        (784 * h1 + h1 * h2 + h2 * 10) / (784 * 256 + 256 * 64 + 640), rel=1e-3
    )
    two = retention.first_reaching(rows, 0.5)
    assert two["budget_kept"] <= 0.5 and rows[two["iteration"] - 1]["budget_kept"] > 0.5
    assert retention.first_reaching(rows, 1e-6) == rows[-1]  # out of reach: the last


def test_the_deployed_model_is_the_smallest_within_tolerance():
    rows = [
        {"iteration": t, "val_accuracy": acc, "params": p, "units_kept": u}
        for t, acc, p, u in [
            (0, 0.98, 1000, 100),
            (1, 0.985, 800, 80),
            (2, 0.972, 600, 60),
            (3, 0.95, 400, 40),
            (4, 0.974, 400, 40),
        ]
    ]
    choice = retention.choose(rows, tolerance=0.01)
    assert choice["iteration"] == 4 and choice["params"] == 400  # 3 is as small but too inaccurate
    assert retention.choose(rows, tolerance=0.005)["iteration"] == 1
    assert retention.choose(rows, tolerance=0.0)["iteration"] == 1
    assert retention.choose(rows[:1] + rows[3:4], tolerance=0.0)["iteration"] == 0  # nothing qualifies: the unpruned


def test_the_input_box_is_the_range_or_the_percentiles_of_each_feature():
    x = torch.arange(101.0).reshape(101, 1, 1) * torch.tensor([1.0, -1.0]).reshape(1, 2, 1)
    batches = [(x[:50], None), (x[50:], None)]
    box = input_box(batches, [0, 100])
    assert box.lo.flatten().tolist() == [0, -100] and box.hi.flatten().tolist() == [100, 0]
    box = input_box(batches, [5, 95])
    assert box.lo.flatten().tolist() == [5, -95] and box.hi.flatten().tolist() == [95, -5]


def test_significance_is_width_times_largest_adjoint_and_the_output_layer_is_never_scored():
    model = models.build(models.spec({"name": "mlp", "hidden": [6, 4]}, 1, 3, 2)).eval()
    x = torch.rand(20, 1, 2, 2)
    method = make_method("interval_adjoint", {})
    layers = models.prunable_layers(model)
    scores = method.score(model, layers, context([(x, None)], input_shape=(1, 2, 2))).scores
    assert list(scores) == ["1", "3"] and scores["1"].shape == (6,) and scores["3"].shape == (4,)
    # by hand for the last hidden layer: its adjoint is exactly the column sums of the output weights
    # wherever the ReLU is surely active, so its significance is width × |column sum| there
    lo, hi = x.amin(0).flatten(), x.amax(0).flatten()
    w1, b1, w3, b3 = model[1].weight, model[1].bias, model[3].weight, model[3].bias
    a_lo = (w1.clamp(min=0) @ lo + w1.clamp(max=0) @ hi + b1).clamp(min=0)
    a_hi = (w1.clamp(min=0) @ hi + w1.clamp(max=0) @ lo + b1).clamp(min=0)
    z_lo = w3.clamp(min=0) @ a_lo + w3.clamp(max=0) @ a_hi + b3
    z_hi = w3.clamp(min=0) @ a_hi + w3.clamp(max=0) @ a_lo + b3
    active = z_lo > 0
    column = model[5].weight.sum(0)
    expected = (z_hi - z_lo) * column.abs()
    assert torch.allclose(scores["3"][active], expected[active].float(), rtol=1e-5)
    assert (scores["3"][z_hi <= 0] == 0).all()  # surely inactive: no adjoint, no significance


def test_pruning_to_counts_keeps_exactly_the_counts_of_every_group():
    model = small_cnn()
    method = make_method("interval_adjoint", {})
    groups = [list(g.members) for g in coupling.groups(model, (1, 8, 8))]
    counts = {group[0]: max(1, len(group) * 2 - 1) for group in groups}
    batches = [(torch.rand(16, 1, 8, 8), None)]
    model = prune_to_counts(model, method, counts, context(batches)).model
    layers = dict(model.named_modules())
    for group in groups:
        for name in group:  # the residual group (stem and block.conv2) shrinks together
            size = models.output_units(layers[name])
            assert size == counts[group[0]]
    assert model(torch.rand(2, 1, 8, 8)).shape == (2, 10)


def test_pruning_to_counts_keeps_the_highest_scoring_channels():
    model = models.build(models.spec({"name": "mlp", "hidden": [8, 4]}, 1, 3, 2)).eval()
    norms = model[1].weight.abs().sum(1)
    best = set(torch.argsort(norms, descending=True)[:3].tolist())
    kept_rows = {tuple(model[1].weight[i].tolist()) for i in best}
    model = prune_to_counts(
        model, make_method("l1_channel", {}), {"1": 3, "3": 4}, context([], input_shape=(1, 2, 2))
    ).model
    assert {tuple(row.tolist()) for row in model[1].weight} == kept_rows and model[3].in_features == 3


def test_bias_compensation_keeps_the_output_at_a_point_box():
    """With a box of one point the intervals are exact values, so folding the removed neurons'
    contributions into the next bias must leave the output at that point unchanged, on either schedule."""
    torch.manual_seed(0)
    original = models.build(models.spec({"name": "mlp", "hidden": [16, 8]}, 1, 4, 3)).eval()
    x = torch.rand(1, 1, 3, 3)
    before = original(x)
    ctx = context([(x, None)], input_shape=(1, 3, 3))
    method = make_method("interval_adjoint", {"bias_compensation": True})
    shrunk = prune_to_counts(copy.deepcopy(original), method, {"1": 9, "3": 8}, ctx).model
    assert shrunk[1].out_features == 9
    assert torch.allclose(shrunk(x), before, atol=1e-5)
    plain = prune_to_counts(copy.deepcopy(original), make_method("interval_adjoint", {}), {"1": 9, "3": 8}, ctx).model
    assert not torch.allclose(plain(x), before, atol=1e-3)  # without compensation the output moves
    one_shot = prune_step(copy.deepcopy(original), method, 0.0, 0.25, ctx).model  # the step schedule: 16 → 12, 8 → 6
    assert (one_shot[1].out_features, one_shot[3].out_features) == (12, 6)
    assert torch.allclose(one_shot(x), before, atol=1e-5)


def iterations() -> retention.Iterations:
    """The retention schedule of an MLP with interval-adjoint significance, five iterations."""
    torch.manual_seed(0)
    spec = models.spec({"name": "mlp", "hidden": [32, 16]}, 1, 4, 4)
    model = models.build(spec)
    x, y = torch.rand(64, 1, 4, 4), torch.randint(0, 4, (64,))
    method = methods.create(MethodEntry.of("interval_adjoint", {}))
    ctx = Context(
        batches=lambda: iter([(x, y)]), device=torch.device("cpu"), generator=torch.Generator(), input_shape=(1, 4, 4)
    )

    def retrain(model, t):
        torch.manual_seed(t)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(5):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        return [{"epoch": 1}]

    def assess(model):
        with torch.no_grad():
            loss = torch.nn.functional.cross_entropy(model(x), y).item()
        return {"val_accuracy": 1 / (1 + loss), "val_loss": loss, "params": sum(p.numel() for p in model.parameters())}

    rows = retention.table({"1": 32, "3": 16}, 0.7, 30, lambda counts: sum(counts.values()) / 48, 0.2)
    done = retention.Iterations()
    retention.iterate(
        model, spec, rows, done, lambda m, t, c: prune_to_counts(m, method, c, ctx).model, retrain, assess
    )
    return done


def test_the_iterations_keep_each_model_as_its_file_and_repeat_to_the_bit():
    done = iterations()
    assert [r["iteration"] for r in done.results] == [0, 1, 2, 3, 4, 5]
    for result, data in zip(done.results, done.models):  # each model file has its iteration's widths
        model = modelfile.load(data)[0]
        assert (model[1].out_features, model[3].out_features) == (result["1"], result["3"])
    assert done.histories[0] == [] and all(h == [{"epoch": 1}] for h in done.histories[1:])
    again = iterations()
    untimed = [{k: v for k, v in r.items() if not k.endswith("_seconds")} for r in done.results]
    assert [{k: v for k, v in r.items() if not k.endswith("_seconds")} for r in again.results] == untimed
    assert again.models == done.models  # a job run twice gives the same, to the bit


def test_a_language_model_is_deployed_by_its_validation_perplexity():
    """Issue 33: perplexity at most the unpruned model's × (1 + tolerance), lower being better."""
    rows = [
        {"iteration": t, "val_accuracy": 0.5, "val_loss": math.log(ppl), "params": p, "units_kept": p // 10}
        for t, ppl, p in [(0, 6.0, 1000), (1, 6.05, 800), (2, 6.2, 600), (3, 7.0, 400)]
    ]
    choice = retention.choose(rows, tolerance=0.01, higher_is_better=False)
    assert choice["iteration"] == 1 and "perplexity ≤ unpruned × (1 + 0.01)" in choice["rule"]
    assert retention.choose(rows, tolerance=0.05, higher_is_better=False)["iteration"] == 2
    assert retention.choose(rows, tolerance=0.0, higher_is_better=False)["iteration"] == 0
