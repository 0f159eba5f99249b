import subprocess
import sys

import pytest
import yaml

from prunebench import params
from prunebench.params import ParamError

from helpers import ROOT


def test_default_params_are_valid(default_params):
    assert 0 <= default_params["ratio"] < 1
    assert set(default_params["methods"]) >= {"random", "magnitude", "l1_channel"}


@pytest.mark.parametrize(
    ("edit", "key", "allowed"),
    [
        (lambda p: p.update(ratio=1.0), "ratio", "[0, 1)"),
        (lambda p: p.update(ratio=-0.1), "ratio", "[0, 1)"),
        (lambda p: p.update(ratio="half"), "ratio", "a number"),
        (lambda p: p["methods"].update(obs={}), "methods.obs", "a registered method: random, magnitude"),
        (lambda p: p["methods"].update(ablation={"method": "nope"}), "methods.ablation.method", "l1_channel"),
        (lambda p: p["methods"]["l1_channel"].update(round_to=0), "methods.l1_channel.round_to", "integer ≥ 1"),
        (lambda p: p["methods"]["magnitude"].update(order=2), "methods.magnitude.order", "a knob of magnitude"),
        (lambda p: p["data"].update(name="imagenet21k"), "data.name", "digits"),
        (lambda p: p["model"].update(name="gpt"), "model.name", "one of cnn, resnet20, resnet56, vgg11_bn"),
        (lambda p: p["model"].update(depth=3), "model.depth", "width, hidden"),
        (lambda p: p["train"].update(epochs=2.5), "train.epochs", "an integer ≥ 1"),
        (lambda p: p["train"].update(lr=True), "train.lr", "a number > 0"),
        (lambda p: p.update(seeds=[1, 1]), "seeds", "distinct"),
        (lambda p: p.update(device="tpu"), "device", "auto, cpu, cuda"),
        (lambda p: p["schedule"]["retrain"].pop("lr"), "schedule.retrain.lr", "missing"),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(cfg, edit, key, allowed):
    edit(cfg)
    with pytest.raises(ParamError) as raised:
        params.validate(cfg)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"params.yaml: {key} ")
    assert allowed in message


def test_method_entries_may_reuse_an_implementation(cfg):
    cfg["methods"]["l1_channel_r8"] = {"method": "l1_channel", "round_to": 8}
    params.validate(cfg)


def test_check_stage_exits_nonzero_with_one_line(cfg, tmp_path):
    cfg["ratio"] = 1.5
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(cfg))
    done = subprocess.run([sys.executable, str(ROOT / "stages/check.py")], cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode != 0
    assert done.stderr.strip() == "params.yaml: ratio = 1.5: expected a number in [0, 1)"
    assert not (tmp_path / "checks").exists()
