import subprocess
import sys

import pytest
import yaml

from prunebench import params, schema
from prunebench.params import ParamError, read

from helpers import ROOT


def test_default_params_are_valid_and_run_every_system_at_five_points(cfg):
    default_params = schema.validate(cfg)
    assert default_params.budget == "macs" and len(default_params.points) >= 5
    assert [round(1 / (1 - r)) for r in default_params.points] == [2, 4, 8, 16, 32]
    implementations = {entry.method for entry in default_params.methods.values()}
    assert implementations >= {
        "random",
        "random_channel",
        "magnitude",
        "lamp",
        "l1_channel",
        "l1_channel_global",
        "slimming",
        "kernel",
        "intra_kernel",
        "sensitivity_unstructured",
        "sensitivity_structured",
        "taylor",
        "hessian_merge",
        "interval_adjoint",
    }
    assert {entry.knobs.get("order") for entry in default_params.methods.values() if entry.method == "taylor"} == {
        1,
        2,
        3,
    }


@pytest.mark.parametrize(
    ("edit", "key", "allowed"),
    [
        (lambda p: p.update(ratio=1.0), "ratio", "(0, 1)"),
        (lambda p: p.update(ratio=-0.1), "ratio", "(0, 1)"),
        (lambda p: p.update(ratio="half"), "ratio", "a number"),
        (lambda p: p.update(ratio=[0.5, 1.5]), "ratio", "a non-empty list, each a number in (0, 1)"),
        (lambda p: p.update(ratio=[0.5, 0.5]), "ratio", "distinct operating points"),
        (lambda p: p.update(budget="flops"), "budget", "one of macs, params, units"),
        (lambda p: p.update(recalibrate=-1), "recalibrate", "an integer ≥ 0"),
        (lambda p: p.update(workers=0), "workers", "null or an integer ≥ 1"),
        (
            lambda p: p["methods"].update(obs={}),
            "methods.obs",
            "a registered method: bn_taylor, l1_channel, random_channel",
        ),
        (lambda p: p["methods"].update(ablation={"method": "nope"}), "methods.ablation.method", "l1_channel"),
        (lambda p: p["methods"]["l1_channel"].update(round_to=0), "methods.l1_channel.round_to", "integer ≥ 1"),
        (lambda p: p["data"].update(name="imagenet21k"), "data.name", "digits"),
        (lambda p: p["model"].update(name="gpt2"), "model.name", "one of cnn, resnet20, resnet56, vgg11_bn"),
        (lambda p: p["train"].update(epochs=2.5), "train.epochs", "an integer ≥ 0"),
        (lambda p: p["model"].update(checkpoint="nowhere.pt"), "model.checkpoint", "a state dict file"),
        (lambda p: p["model"].update(name="nowhere:net"), "model.name", "cannot import it from the repository root"),
        (lambda p: p["train"].update(lr=True), "train.lr", "a number > 0"),
        (lambda p: p.update(seeds=[1, 1]), "seeds", "distinct"),
        (lambda p: p.update(device="tpu"), "device", "auto, cpu, cuda"),
        (lambda p: p["schedule"]["retrain"].pop("lr"), "schedule.retrain.lr", "missing"),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(cfg, edit, key, allowed):
    edit(cfg)
    with pytest.raises(ParamError) as raised:
        schema.validate(cfg)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"params.yaml: {key} ")
    assert allowed in message


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda p: p["schedule"].update(q=0.7), "schedule.q: unknown key (did you mean schedule.retention.q?)"),
        (lambda p: p.update(ratios=0.5), "ratios: unknown key (did you mean ratio?)"),
        (lambda p: p["data"].update(batchsize=8), "data.batchsize: unknown key (did you mean data.batch_size?)"),
        (lambda p: p["train"].update(epoch=3), "train.epoch: unknown key (did you mean train.epochs?)"),
        (
            lambda p: p["methods"]["taylor1"].update(oder=2),
            "methods.taylor1.oder: unknown key (did you mean methods.taylor1.order?)",
        ),
        (
            lambda p: p["methods"]["magnitude"].update(order=2),
            "methods.magnitude.order: unknown key (expected one of method, schedule)",
        ),
        (lambda p: p["model"].update(widht=16), "model.widht: unknown key (did you mean model.width?)"),
        (
            lambda p: p["measure"].update(colour="red"),
            "measure.colour: unknown key (expected one of latency_batch, rounds, min_run_time)",
        ),
    ],
)
def test_an_unknown_key_is_refused_with_the_closest_known_one(cfg, edit, message):
    """A typo must never run the defaults silently."""
    edit(cfg)
    with pytest.raises(ParamError) as raised:
        schema.validate(cfg)
    assert str(raised.value) == f"params.yaml: {message}"


def test_method_entries_may_reuse_an_implementation(cfg):
    cfg["methods"]["l1_channel_r8"] = {"method": "l1_channel", "round_to": 8}
    schema.validate(cfg)


def test_check_stage_exits_nonzero_with_one_line(cfg, tmp_path):
    cfg["ratio"] = 1.5
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(cfg))
    done = subprocess.run([sys.executable, str(ROOT / "stages/check.py")], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode != 0
    assert done.stderr.strip() == (
        "check: params.yaml: ratio = 1.5: expected a number in (0, 1), or a non-empty list, each a number in (0, 1)"
    )
    assert not (tmp_path / "checks").exists()


def test_the_committed_json_schema_is_the_declaration_and_agrees_with_the_checks(cfg):
    """Editors read params.schema.json: it must be what the declaration writes today, accept the
    default params.yaml, and refuse what the check stage refuses."""
    import copy
    import json

    import jsonschema

    committed = json.loads((ROOT / "params.schema.json").read_text())
    assert committed == schema.json_schema(), "params.schema.json is stale: python -m prunebench.schema"
    assert (ROOT / "params.yaml").read_text().startswith("# yaml-language-server: $schema=params.schema.json\n")
    validator = jsonschema.Draft202012Validator(committed)
    assert not list(validator.iter_errors(cfg))
    for edit in (
        lambda p: p.update(ratio=1.5),
        lambda p: p["schedule"].update(q=0.5),
        lambda p: p["methods"]["taylor1"].update(oder=2),
        lambda p: p["data"].update(name="imagenet21k"),
        lambda p: p["train"].pop("lr"),
        lambda p: p["methods"].update(x={"method": "nope"}),
    ):
        bad = copy.deepcopy(cfg)
        edit(bad)
        assert list(validator.iter_errors(bad))
        with pytest.raises(ParamError):
            schema.validate(bad)


def test_a_params_file_that_is_not_yaml_is_one_line_with_its_line_and_column(tmp_path):
    broken = tmp_path / "params.yaml"
    broken.write_text("budget: params\nratio:\n- 0.5\nseeds: [0, 2, 3]\n- 0\n- 1\n")  # a flow list, then block items
    with pytest.raises(ParamError) as stopped:
        read(broken)
    message = str(stopped.value)
    assert message.startswith(f"{broken} line 5, column 1: not YAML (") and "\n" not in message


def test_the_leaderboard_preset_is_the_default_run_with_other_methods():
    """presets/leaderboard.yaml (issue 35) must not drift from params.yaml but in its methods."""
    import dataclasses

    preset = params.parse(params.read(ROOT / "presets/leaderboard.yaml"))
    default = params.parse(params.read(ROOT / "params.yaml"))
    assert dataclasses.replace(preset, methods=default.methods) == default
    chosen = {entry.method for entry in preset.methods.values()}
    assert {"fpgm", "obdc", "group_norm", "hrank", "bn_taylor", "oracle"} <= chosen
