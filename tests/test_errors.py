"""Issue 14: failures that explain themselves: one line naming what to change, no traceback
(PRUNEBENCH_DEBUG=1 or --debug shows it), and nothing half-written."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from prunebench.training import modelfile

from helpers import ROOT, make_method, small_cnn


def prunebench(*args: str, cwd: Path, debug: bool = False) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PRUNEBENCH_DEBUG"} | (
        {"PRUNEBENCH_DEBUG": "1"} if debug else {}
    )
    return subprocess.run(
        [sys.executable, "-m", "prunebench.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


@pytest.fixture
def saved(tmp_path) -> Path:
    path = tmp_path / "model.pt"
    modelfile.save(
        path,
        small_cnn(),
        {"name": "cnn", "width": 8, "hidden": 16, "in_channels": 1, "num_classes": 10, "image_size": 8},
    )
    return path


def test_a_truncated_model_file_is_one_line_naming_the_file(tmp_path, saved):
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(saved.read_bytes()[:1000])
    done = prunebench("evaluate", str(truncated), cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"prunebench: {truncated}: unreadable, truncated or not a torch file")
    with pytest.raises(modelfile.ModelFileError, match="no such file"):
        modelfile.load(tmp_path / "missing.pt")


def test_debug_shows_the_traceback(tmp_path, saved):
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(saved.read_bytes()[:1000])
    for done in (
        prunebench("evaluate", str(truncated), cwd=tmp_path, debug=True),
        prunebench("--debug", "evaluate", str(truncated), cwd=tmp_path),
    ):
        assert done.returncode == 1 and "Traceback" in done.stderr and "ModelFileError" in done.stderr


def test_an_unforeseen_error_is_one_line_too(tmp_path, saved):
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())  # no split prepared
    done = prunebench("evaluate", str(saved), cwd=tmp_path)
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("prunebench: ") and "(set PRUNEBENCH_DEBUG=1 for the traceback)" in done.stderr
    assert (
        prunebench("table", cwd=tmp_path).stderr
        == "prunebench: results/winners.csv is missing: run the pipeline first (make run, or dvc repro)\n"
    )


def test_a_diverging_training_stops_with_one_line_and_writes_nothing(tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params |= {"seeds": [0], "workers": 1}
    params["train"] |= {"lr": 1e6, "epochs": 3}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("check", "data"):
        subprocess.run(
            [sys.executable, str(ROOT / "stages" / f"{stage}.py")], cwd=tmp_path, check=True, capture_output=True
        )
    done = subprocess.run(
        [sys.executable, str(ROOT / "stages/train.py")], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    message = done.stderr.strip().splitlines()[-1]  # after the progress bars
    assert "Traceback" not in done.stderr
    assert message == "train: train seed 0, epoch 1: the training loss is nan (diverged); lower train.lr (now 1e+06)"
    assert not (tmp_path / "models").exists() and not (tmp_path / "metrics/base.json").exists()


def test_a_method_that_cannot_prune_a_model_names_the_layer():
    from prunebench.errors import Unsupported
    from prunebench.pruning.steps import prune_step
    from prunebench.training import models

    from helpers import context

    model = models.build(models.spec({"name": "mobilenet_v3_large"}, 3, 10, 32)).eval()
    ctx = context([(torch.randn(2, 3, 32, 32), torch.randint(0, 10, (2,)))], input_shape=(3, 32, 32))
    with pytest.raises(Unsupported, match=r"features.0.2 \(Hardswish\) is not supported"):
        prune_step(model, make_method("interval_adjoint", {}), 0.0, 0.5, ctx)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda p: p.update(methods=list(p["methods"])), "params.yaml: methods = ['random', "),
        (lambda p: p.clear(), "params.yaml: expected a mapping of keys to values"),
        (lambda p: p.update(device="cuda"), "params.yaml: device = 'cuda': expected auto or cpu on this machine"),
    ],
)
def test_params_dvc_cannot_parse_and_a_device_this_machine_lacks_are_one_line(tmp_path, edit, expected):
    """Issue 36: `prunebench check` (what `make run` runs first) names the key where DVC's parser
    would stop on dvc.yaml; the check stage names a CUDA device the machine lacks."""
    if expected.startswith("params.yaml: device") and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    edit(params)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params) if params else "")
    command = "check-model" if "device" in expected else "check"
    done = prunebench(command, cwd=tmp_path)
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"prunebench: {expected}")
