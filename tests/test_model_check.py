"""Issue 21: a model check that fails in seconds, not after 15 minutes: the check stage builds the
model, loads its weights, runs one batch and inspects its channel groups; frozen groups and the
methods that refuse the model are named, and a refusing method leaves the others running."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from helpers import ROOT

FOREIGN = Path(__file__).parent / "foreign_models.py"
METHODS = {"magnitude": {}, "l1_channel": {}, "interval_adjoint": {}}


def user_repo(tmp_path: Path, model: str, **changes) -> Path:
    """A working directory as a user has it: params.yaml for `model` (a factory of
    tests/foreign_models.py, copied next to it), the stages run from the checkout."""
    shutil.copy(FOREIGN, tmp_path / "foreign_models.py")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params |= {"seeds": [0], "ratio": [0.5], "workers": 1, "methods": METHODS} | changes
    params["model"] = {"name": f"foreign_models:{model}"}
    params["train"]["epochs"] = 1
    params["finetune"]["epochs"] = 1
    params["sensitivity"]["ratios"] = [0.5]
    params["schedule"]["retrain"]["epochs"] = 1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path


def stage(repo: Path, name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "stages" / f"{name}.py"), *args], cwd=repo, capture_output=True, text=True
    )


def test_the_check_stage_names_frozen_groups_and_refusing_methods(tmp_path):
    repo = user_repo(tmp_path, "pad_resnet")
    done = stage(repo, "check")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "channel groups: 2 to prune, 1 frozen"
    assert lines[1] == (
        "frozen: stem.0+layer1.conv2.0+layer2.conv2.0 (3 layers): channel padding (F.pad) in a shortcut couples "
        "layers of 8 and 16 channels"
    )
    assert lines[2].startswith(
        "refused: interval_adjoint: interval propagation: operation call_function getitem in layer2 "
    )
    found = json.loads((repo / "checks/model.json").read_text())
    assert found["groups"] == 2 and [g["layers"] for g in found["frozen"]] == [
        ["stem.0", "layer1.conv2.0", "layer2.conv2.0"]
    ]
    assert list(found["refused"]) == ["interval_adjoint"]
    cli = subprocess.run(
        [sys.executable, "-m", "prunebench.cli", "check-model"], cwd=repo, capture_output=True, text=True
    )
    assert cli.returncode == 0 and cli.stdout.splitlines() == lines


def test_the_same_network_with_conv_shortcuts_freezes_nothing_and_nobody_refuses(tmp_path):
    done = stage(user_repo(tmp_path, "conv_resnet"), "check")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["channel groups: 4 to prune, 0 frozen"]


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (
            "    return nn.Sequential(nn.Flatten(), nn.Linear(64, 5))",
            "gives outputs of shape (2, 5); expected (2, 10): one logit per class of data.name = 'digits'",
        ),
        (
            "    return nn.Sequential(nn.Flatten(), nn.Linear(32, 10))",
            "one batch of shape (2, 1, 8, 8) fails (RuntimeError: mat1 and mat2 shapes cannot be multiplied",
        ),
    ],
)
def test_a_model_that_cannot_run_one_batch_stops_the_check_stage_in_one_line(tmp_path, factory, message):
    user_repo(tmp_path, "pad_resnet")
    (tmp_path / "foreign_models.py").write_text(f"from torch import nn\n\n\ndef pad_resnet(num_classes):\n{factory}\n")
    done = stage(tmp_path, "check")
    assert done.returncode != 0
    error = done.stderr.strip()
    assert "\n" not in error and error.startswith("check: model.name = 'foreign_models:pad_resnet': ")
    assert message in error
    assert not (tmp_path / "checks").exists()


def test_a_method_that_refuses_the_model_is_reported_and_the_others_run(tmp_path):
    """A model from elsewhere as it is: no base training, no fine-tuning (no curves to draw)."""
    repo = user_repo(tmp_path, "pad_resnet")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["epochs"] = params["finetune"]["epochs"] = 0
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    for name in ("check", "data", "train", "sensitivity"):
        done = stage(repo, name)
        assert done.returncode == 0, (name, done.stderr[-2000:])
    for key in METHODS:
        for name in ("prune", "finetune"):
            done = stage(repo, name, key)
            assert done.returncode == 0, (name, key, done.stderr[-2000:])
    assert "interval_adjoint: refused: interval propagation" in stage(repo, "prune", "interval_adjoint").stdout
    for name in ("deploy", "concatenate", "compare"):
        done = stage(repo, name)
        assert done.returncode == 0, (name, done.stderr[-2000:])
    results = pd.read_csv(repo / "results/results.csv")
    assert set(results["method"]) == {"magnitude", "l1_channel"}
    assert (results["onnx_check"] == "ok").all()  # the padded shortcuts export and agree too
    assert (results["macs_reduction"] > 1).all()
    for folder in ("models/pruned", "models/finetuned", "plots/methods"):
        refusal = json.loads((repo / folder / "interval_adjoint/refused.json").read_text())
        assert refusal["reason"].startswith("interval propagation: operation call_function getitem")
    assert not list((repo / "models/pruned/interval_adjoint").glob("*/*.pt"))
    report = (repo / "results/report.md").read_text()
    assert "## What this model allows" in report
    assert "- frozen: stem.0+layer1.conv2.0+layer2.conv2.0 (3 layers): channel padding (F.pad)" in report
    assert "- **interval_adjoint**: interval propagation: operation call_function getitem" in report
