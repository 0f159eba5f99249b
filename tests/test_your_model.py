"""Issue 13: the user's own model: torchvision weights from the hub cache, a state-dict
checkpoint, a factory in the user's module; every method prunes it or refuses by name."""

import copy
import json
import subprocess
import sys

import pytest
import torch
import yaml

from prunebench import schema
from prunebench.errors import Unsupported
from prunebench.params import ParamError
from prunebench.pruning.steps import prune_step
from prunebench.training import modelfile, models, pretrained

from helpers import ROOT, context, make_method

FACTORY = '''
from torch import nn


def net(num_classes, width=8):
    """Takes no in_channels or image_size: the digits shape is fixed here. GELU is deliberate."""
    return nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                         nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.BatchNorm2d(2 * width), nn.GELU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, num_classes))
'''


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache of the test's own."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path / "hub" / "checkpoints"


def imagenet_resnet18() -> dict[str, torch.Tensor]:
    """What torchvision's IMAGENET1K_V1 file holds: a 1000-class resnet18's state dict."""
    torch.manual_seed(1)
    return models.build(models.spec({"name": "resnet18"}, 3, 1000, 224)).state_dict()


def test_torchvision_weights_come_from_the_hub_cache_and_only_the_head_starts_afresh(hub):
    hub.mkdir(parents=True)
    saved = imagenet_resnet18()
    torch.save(saved, hub / "resnet18-f37072fd.pth")  # the file name torchvision downloads
    model = pretrained.initial(models.spec({"name": "resnet18", "weights": "IMAGENET1K_V1"}, 3, 10, 224))
    state = model.state_dict()
    different = [k for k in state if not torch.equal(state[k], saved[k])]
    assert different == ["fc.weight", "fc.bias"]  # 10 classes here, 1000 in the file
    small = pretrained.initial(models.spec({"name": "resnet18", "weights": "DEFAULT"}, 3, 10, 32))
    assert torch.equal(small.state_dict()["layer1.0.conv1.weight"], saved["layer1.0.conv1.weight"])
    assert not torch.equal(small.state_dict()["bn1.weight"], torch.zeros(64))


def test_vgg_keeps_its_pretrained_first_conv_on_small_rgb_images(hub):
    hub.mkdir(parents=True)
    torch.manual_seed(2)
    saved = models.build(models.spec({"name": "vgg11"}, 3, 1000, 224)).state_dict()
    torch.save(saved, hub / "vgg11-8a719046.pth")
    model = pretrained.initial(models.spec({"name": "vgg11", "weights": "IMAGENET1K_V1"}, 3, 10, 32))
    assert torch.equal(model.state_dict()["features.0.weight"], saved["features.0.weight"])
    assert torch.equal(model.state_dict()["classifier.3.weight"], saved["classifier.3.weight"])


def test_missing_weights_name_the_key_the_file_and_where_to_put_it(hub):
    with pytest.raises(pretrained.WeightsError) as raised:
        pretrained.initial(models.spec({"name": "resnet18", "weights": "IMAGENET1K_V1"}, 3, 10, 32))
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("model.weights = 'IMAGENET1K_V1': resnet18-f37072fd.pth is not in ")
    assert str(hub) in message and "model.download: true" in message
    with pytest.raises(pretrained.WeightsError, match="expected one of IMAGENET1K_V1, DEFAULT"):
        pretrained.initial(models.spec({"name": "resnet18", "weights": "IMAGENET21K"}, 3, 10, 32))
    with pytest.raises(pretrained.WeightsError, match="cnn has no pretrained weights"):
        pretrained.initial(models.spec({"name": "cnn", "weights": "DEFAULT"}, 1, 10, 8))


def test_a_checkpoint_loads_exactly_and_a_mismatch_is_one_line(tmp_path):
    spec = models.spec({"name": "cnn", "width": 8, "hidden": 16}, 1, 10, 8)
    torch.manual_seed(3)
    state = models.build(spec).state_dict()
    torch.save(state, tmp_path / "mine.pt")
    loaded = pretrained.initial(spec | {"checkpoint": str(tmp_path / "mine.pt")}).state_dict()
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    torch.save({"state_dict": state}, tmp_path / "wrapped.pt")  # as many training scripts save it
    pretrained.initial(spec | {"checkpoint": str(tmp_path / "wrapped.pt")})

    wider = spec | {"width": 16, "checkpoint": str(tmp_path / "mine.pt")}
    with pytest.raises(
        pretrained.WeightsError,
        match=r"stem.0.weight has shape \(8, 1, 3, 3\), the model's is "
        r"\(16, 1, 3, 3\)",
    ):
        pretrained.initial(wider)
    del state["fc.bias"]
    state["classifier.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "renamed.pt")
    with pytest.raises(pretrained.WeightsError, match="missing fc.bias; unexpected classifier.weight"):
        pretrained.initial(spec | {"checkpoint": str(tmp_path / "renamed.pt")})


def _bn_model_state() -> tuple[dict, dict[str, torch.Tensor]]:
    spec = models.spec({"name": "cnn", "width": 8, "hidden": 16}, 1, 10, 8)
    torch.manual_seed(4)
    model = models.build(spec)
    model.train()(torch.randn(4, 1, 8, 8))  # running statistics and batch counters differ from a fresh model's
    return spec, model.state_dict()


@pytest.mark.parametrize(
    "form",
    ["dataparallel", "compiled_in_dataparallel", "model_state_dict", "model", "no_counters", "safetensors"],
)
def test_checkpoints_as_other_code_bases_save_them_load_and_say_what_was_adapted(tmp_path, capsys, form):
    from safetensors.torch import save_file

    spec, state = _bn_model_state()
    file = tmp_path / ("mine.safetensors" if form == "safetensors" else "mine.pt")
    saved: dict = dict(state)
    if form == "dataparallel":
        saved = {"best_prec1": 93.4, "state_dict": {f"module.{k}": v for k, v in state.items()}}
    elif form == "compiled_in_dataparallel":
        saved = {f"module._orig_mod.{k}": v for k, v in state.items()}
    elif form in ("model_state_dict", "model"):
        saved = {"epoch": 90, form: state, "optimizer_state_dict": {"state": {}, "param_groups": []}}
    elif form == "no_counters":  # a file saved before PyTorch 0.4.1
        saved = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    if form == "safetensors":
        save_file(saved, file)
    else:
        torch.save(saved, file)
    loaded = pretrained.initial(spec | {"checkpoint": str(file)}).state_dict()
    expected = {k: torch.zeros_like(v) if form == "no_counters" and "num_batches" in k else v for k, v in state.items()}
    assert all(torch.equal(loaded[k], expected[k]) for k in state)
    said = [line for line in capsys.readouterr().out.splitlines() if "model.checkpoint" in line]
    assert len(said) == 1
    adapted = {
        "dataparallel": "adapted: the state dict under 'state_dict' (beside best_prec1); prefix 'module.' stripped",
        "compiled_in_dataparallel": "adapted: prefix 'module.' stripped; prefix '_orig_mod.' stripped",
        "model_state_dict": "adapted: the state dict under 'model_state_dict' (beside epoch, optimizer_state_dict)",
        "model": "adapted: the state dict under 'model' (beside epoch, optimizer_state_dict)",
        "no_counters": "adapted: num_batches_tracked absent from 4 BatchNorm layers (set to 0)",
        "safetensors": "loaded 28 tensors",
    }[form]
    assert said[0].endswith(adapted), said[0]


def test_a_checkpoint_that_is_no_state_dict_or_no_safetensors_is_one_line(tmp_path):
    spec, state = _bn_model_state()
    torch.save({"epoch": 3, "weights": [1, 2]}, tmp_path / "odd.pt")
    with pytest.raises(pretrained.WeightsError, match=r"odd.pt holds no state dict \(name → tensor\), nor one under"):
        pretrained.initial(spec | {"checkpoint": str(tmp_path / "odd.pt")})
    (tmp_path / "bad.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage")
    with pytest.raises(modelfile.ModelFileError, match="bad.safetensors: unreadable or not a safetensors file"):
        pretrained.initial(spec | {"checkpoint": str(tmp_path / "bad.safetensors")})
    torch.save({f"module.{k}": v for k, v in state.items() if k != "fc.bias"}, tmp_path / "short.pt")
    with pytest.raises(
        pretrained.WeightsError, match="short.pt does not fit model .*: missing fc.bias; unexpected none"
    ):
        pretrained.initial(spec | {"checkpoint": str(tmp_path / "short.pt")})


@pytest.fixture
def factory(tmp_path, monkeypatch):
    """The user's module in the repository root (here: the test's working directory)."""
    (tmp_path / "mymodels.py").write_text(FACTORY)
    monkeypatch.chdir(tmp_path)
    yield "mymodels:net"
    sys.modules.pop("mymodels", None)


def test_a_users_factory_gets_the_shape_it_takes_and_its_own_knobs(factory):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["model"] = {"name": factory, "width": 4}
    schema.validate(params)
    model = models.build(models.spec(params["model"], 1, 10, 8))
    assert model[0].out_channels == 4 and model[-1].out_features == 10
    params["model"]["colour"] = 3
    with pytest.raises(
        ParamError,
        match=r"model.colour: unknown key \(expected one of name, weights, checkpoint, "
        r"download, width\)",
    ):
        schema.validate(params)


@pytest.mark.parametrize("method", list(yaml.safe_load((ROOT / "params.yaml").read_text())["methods"]))
def test_every_default_method_prunes_the_users_model_or_refuses_naming_the_layer(factory, method):
    torch.manual_seed(0)
    model = models.build(models.spec({"name": factory}, 1, 10, 8)).eval()
    batches = [(torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,)))]
    entry = yaml.safe_load((ROOT / "params.yaml").read_text())["methods"][method] or {}
    knobs = {k: v for k, v in entry.items() if k not in ("schedule", "fidelity_channels")}
    ctx = context(batches)
    ctx.sensitivity = [
        {"seed": 0, "layer": layer, "kind": kind, "ratio": r, "accuracy": 0.9 - r / 2}
        for kind, layers in (("unstructured", ["0", "3"]), ("structured", ["0", "3"]))
        for layer in layers
        for r in (0.0, 0.5, 0.9, 0.99)
    ]
    if method == "interval_adjoint":  # no interval rule for GELU: refused, naming the layer
        with pytest.raises(Unsupported, match=r"5 \(GELU\) is not supported"):
            prune_step(copy.deepcopy(model), make_method(entry.get("method", method), knobs), 0.0, 0.5, ctx)
        return
    pruned = prune_step(copy.deepcopy(model), make_method(entry.get("method", method), knobs), 0.0, 0.5, ctx)
    assert pruned.model(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    before = sum(int((p != 0).sum()) for p in model.parameters())
    assert sum(int((p != 0).sum()) for p in pruned.model.parameters()) < before


def test_train_epochs_0_makes_the_loaded_checkpoint_the_base_model(tmp_path):
    torch.manual_seed(4)
    spec = {"name": "cnn", "width": 8, "hidden": 16}
    state = models.build(models.spec(spec, 1, 10, 8)).state_dict()
    torch.save(state, tmp_path / "start.pt")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params |= {"seeds": [0], "workers": 1}
    params["model"] |= spec | {"checkpoint": "start.pt"}
    params["train"]["epochs"] = 0
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("check", "data", "train"):
        done = subprocess.run(
            [sys.executable, str(ROOT / "stages" / f"{stage}.py")],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
    base, _, saved_spec = modelfile.load(tmp_path / "models/base/0.pt")
    assert all(torch.equal(base.state_dict()[k], state[k]) for k in state)  # never trained
    assert saved_spec["checkpoint"] == "start.pt"
    manifest = json.loads((tmp_path / "checks/code/train.json").read_text())
    assert "start.pt" in manifest  # editing the checkpoint re-runs the train stage
    assert 0 < json.loads((tmp_path / "metrics/base.json").read_text())["accuracy"] < 0.5  # untrained: near chance


def test_the_example_factory_builds_a_model_from_another_checkout(tmp_path):
    """README's "Bring a model from elsewhere": model.name examples.foreign_model:build."""
    (tmp_path / "their_zoo.py").write_text(
        "from torch import nn\n\n\ndef fixed():\n    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))\n\n\n"
        "def sized(num_classes=10):\n    return nn.Sequential(nn.Flatten(), nn.Linear(64, num_classes))\n"
    )
    for function, classes in (("fixed", 10), ("sized", 7)):
        section = {"name": "examples.foreign_model:build", "source": str(tmp_path), "module": "their_zoo"}
        model = models.build(models.spec(section | {"function": function}, 1, classes, 8))
        assert model(torch.zeros(2, 1, 8, 8)).shape == (2, classes)
    sys.modules.pop("their_zoo", None)
