"""Issue 22: every pruned model as a standalone ONNX network, checked in ONNX Runtime against
PyTorch; failures are one line naming the layer; latencies timed side by side."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from prunebench.deploy import export, timing
from prunebench.pruning.steps import prune_step
from prunebench.training import modelfile, models

from helpers import context, make_method, small_cnn

X = torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize(
    ("key", "entry"),
    [
        ("magnitude", {}),  # weights: masks folded in
        ("l1_channel", {}),  # channels: physically removed
        ("interval_adjoint", {"schedule": "steps"}),  # the retention method's significance and removal
    ],
)
def test_an_exported_pruned_model_matches_pytorch(key, entry, tmp_path):
    model = small_cnn()
    ctx = context([(X, torch.randint(0, 10, (16,)))])
    pruned = prune_step(model, make_method(key, entry), 0.0, 0.5, ctx)
    saved = tmp_path / "model.pt"
    spec = models.spec({"name": "cnn", "width": 8, "hidden": 16}, 1, 10, 8)
    modelfile.save(saved, pruned.model, spec, pruned.masks)
    deployed = export.deployable(saved)
    if pruned.masks:  # the masks are in the weights the runtime gets
        name, mask = next(iter(pruned.masks.items()))
        assert (deployed.get_parameter(name)[mask == 0] == 0).all()
    path = export.export(deployed, X[:1], tmp_path / "model.onnx")
    result = export.check(deployed, path, X, tolerance=1e-4)
    assert result.problem is None and result.agreement == 1.0
    assert 0 <= result.max_difference <= 1e-4 * (1 + result.scale)
    with torch.no_grad():  # and the batch dimension is dynamic: another batch size runs
        expected = deployed(X[:5]).numpy()
    got = export.session(path).run([export.OUTPUT], {export.INPUT: X[:5].numpy()})[0]
    assert got.shape == (5, 10) and abs(got - expected).max() < 1e-4


def test_a_corrupt_export_is_one_line(tmp_path):
    model = small_cnn()
    path = export.export(model, X[:1], tmp_path / "model.onnx")
    path.write_bytes(path.read_bytes()[:1000])  # cut short, as a crash or a full disk would
    result = export.check(model, path, X, tolerance=1e-4)
    assert result.problem and "\n" not in result.problem and result.problem.startswith("ONNX Runtime cannot run it")
    assert result.row()["onnx_max_difference"] is None and result.row()["onnx_check"] == result.problem


class Baked(nn.Module):
    """Divides by the largest |x| of the batch it was exported with: a constant in the export."""

    def forward(self, x):
        return x / float(x.abs().max())


def test_a_disagreeing_export_names_the_first_layer_that_differs(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), Baked(), nn.Flatten(), nn.Linear(144, 10)).eval()
    path = export.export(model, X[:1], tmp_path / "model.onnx")
    result = export.check(model, path, X, tolerance=1e-4)
    assert result.problem and "\n" not in result.problem
    assert "first different layer: 2 (Div)" in result.problem


class Eigen(nn.Module):
    def forward(self, x):
        return torch.linalg.eigvals(x[:, 0, :4, :4]).real.sum(-1, keepdim=True).expand(-1, 10)


def test_a_failed_export_names_the_first_layer_that_does_not_export():
    model = nn.Sequential(nn.Conv2d(1, 1, 1), Eigen()).eval()
    with pytest.raises(Exception) as raised:
        export.to_onnx(model, X[:1])
    line = export.export_failure(model, X[:1], raised.value)
    assert (
        "\n" not in line
        and line.startswith("export failed")
        and line.endswith("first layer that does not export: 1 (Eigen)")
    )


@pytest.fixture
def one_thread():
    """As the stages run torch (`runtime.setup`)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_interleaved_timing_gives_every_model_every_way(one_thread):
    small, large = small_cnn(), models.build(models.spec({"name": "cnn", "width": 32, "hidden": 64}, 1, 10, 8)).eval()
    pairs = {n: (m, export.session(export.to_onnx(m, X[:1]))) for n, m in (("small", small), ("large", large))}
    ms = timing.interleaved(pairs, (1, 8, 8), batch=32, rounds=2, min_run_time=0.005)
    assert set(ms) == {"small", "large"}
    for values in ms.values():
        assert set(values) == set(timing.WAYS) and all(math.isfinite(v) and v > 0 for v in values.values())
    assert ms["large"]["latency_ms"] > ms["small"]["latency_ms"]  # 16× the MACs, timed side by side


def test_the_export_command_writes_a_checked_network(tmp_path, capsys):
    from prunebench import cli

    saved = tmp_path / "model.pt"
    modelfile.save(saved, small_cnn(), models.spec({"name": "cnn", "width": 8, "hidden": 16}, 1, 10, 8))
    assert cli.main(["export", str(saved), str(tmp_path / "model.onnx")]) == 0
    assert "argmax agrees on 100% of 8 random inputs" in capsys.readouterr().out
    assert export.session(tmp_path / "model.onnx").run(None, {export.INPUT: X[:3].numpy()})[0].shape == (3, 10)
