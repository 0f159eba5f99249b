"""Issue 33: Hugging Face causal LMs from a local directory (GPT-2, OPT, Llama, Qwen2), with their
own tokenizer: loaded offline as transformers itself runs them, pruned (weights, MLP neurons,
heads), reloaded, exported; and the faults a user meets, each one line from the check stage."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from prunebench import params
from prunebench.deploy import export
from prunebench.errors import UserError
from prunebench.pruning import coupling, surgery
from prunebench.pruning.steps import prune_step
from prunebench.stages.check import inspect_model
from prunebench.training import data, inputs, modelfile, models, pretrained, text
from prunebench.training.models.huggingface import transformers

from helpers import ROOT, context, make_method, prunable_zero_fraction, save_causal_lm, save_tokenizer

ARCHITECTURES = ("gpt2", "opt", "llama", "qwen2")
SHAPE = inputs.Tokens(16, 256)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Each architecture's tiny random-weight model, saved once per module."""
    root = tmp_path_factory.mktemp("hf")
    return {kind: save_causal_lm(root / kind, kind) for kind in ARCHITECTURES}


def loaded(directory, length: int = 16, vocab: int = 256) -> torch.nn.Module:
    spec = models.spec({"name": f"hf:{directory}", "weights": str(directory)}, vocab_size=vocab, sequence_length=length)
    return pretrained.initial(spec).eval()


@pytest.mark.parametrize("kind", ARCHITECTURES)
def test_a_saved_model_loads_offline_and_computes_what_transformers_computes(saved, kind):
    model = loaded(saved[kind])
    reference = transformers().AutoModelForCausalLM.from_pretrained(saved[kind], local_files_only=True).eval()
    x = inputs.example(SHAPE, 2, random=True)
    with torch.no_grad():
        expected = reference(input_ids=x).logits[..., :256]
        assert torch.allclose(model(x), expected, atol=1e-5)
    linear = models.prunable_layers(model)
    assert linear and all(isinstance(layer, torch.nn.Linear) for layer in linear.values())
    assert not any(name.endswith("lm_head") for name in linear)  # the output layer, tied or not, is never pruned


@pytest.mark.parametrize("kind", ARCHITECTURES)
def test_heads_and_neurons_are_removed_and_the_model_reloads_and_exports(saved, kind, tmp_path):
    model = loaded(saved[kind])
    found = coupling.groups(model, SHAPE)
    kinds = {group.kind for group in found}
    assert {"channel", "head"} <= kinds and not coupling.frozen_groups(model, SHAPE)
    head = next(g for g in found if g.kind == "head")
    neurons = next(g for g in found if g.kind == "channel")
    before = sum(p.numel() for p in model.parameters())
    pruned = surgery.remove(model, {head.root: [0], neurons.root: list(range(8))}, SHAPE, found)
    assert sum(p.numel() for p in pruned.parameters()) < before
    x = inputs.example(SHAPE, 2, random=True)
    with torch.no_grad():
        out = pruned(x)
    assert out.shape == (2, 16, 256) and torch.isfinite(out).all()
    spec = models.spec({"name": f"hf:{saved[kind]}"}, vocab_size=256, sequence_length=16)
    modelfile.save(tmp_path / "m.pt", pruned, spec)
    reloaded = modelfile.load(tmp_path / "m.pt")[0].eval()
    with torch.no_grad():
        assert torch.equal(reloaded(x), out)
    tied = reloaded.lm.get_output_embeddings().weight is reloaded.lm.get_input_embeddings().weight
    assert tied == (kind in ("gpt2", "opt"))  # what the architecture ties stays tied
    check = export.check(reloaded, export.to_onnx(reloaded, x), x, 1e-4)
    assert check.problem is None and check.agreement == 1.0


@pytest.mark.parametrize("method", ["magnitude", "magnitude_global", "lamp", "random"])
def test_weight_methods_mask_gpt2s_conv1d_layers_and_never_the_tied_output_layer(saved, method):
    model = loaded(saved["gpt2"])
    assert model.lm.lm_head.weight is model.lm.transformer.wte.weight  # tied, as GPT-2 ties them
    embedding = model.lm.transformer.wte.weight.detach().clone()
    pruned = prune_step(model, make_method(method, {}), 0.0, 0.5, context(input_shape=SHAPE))
    assert {"lm.transformer.h.0.attn.c_attn.weight", "lm.transformer.h.1.mlp.c_proj.weight"} <= set(pruned.masks)
    assert not any("lm_head" in name or "wte" in name for name in pruned.masks)
    assert torch.equal(pruned.model.lm.transformer.wte.weight, embedding)
    assert prunable_zero_fraction(pruned.model) == pytest.approx(0.5, abs=0.01)


def hf_params(model_dir, tokenizer_dir=None, **model) -> params.Params:
    raw = params.read(ROOT / "presets/shakespeare.yaml")
    raw["model"] = {"name": f"hf:{model_dir}", "weights": None if model_dir is None else str(model_dir), **model}
    raw["data"]["tokenizer"] = None if tokenizer_dir is None else str(tokenizer_dir)
    raw["data"]["sequence_length"] = 16
    return params.parse(raw)


def test_the_check_stage_builds_a_hf_model_for_its_tokenizers_text_and_finds_its_units(saved, tmp_path):
    tokenizer = save_tokenizer(tmp_path / "tokenizer", text.corpus().decode()[:100_000])
    checked = hf_params(saved["llama"], tokenizer)
    assert data.shape_of(checked.data) == {"vocab_size": 300, "sequence_length": 16}
    found = inspect_model(checked)
    assert found.kinds == {"channel": 2, "width": 1, "head": 2} and not found.frozen


def test_text_is_tokenised_by_the_models_tokenizer_and_the_split_records_its_ids(tmp_path):
    corpus = text.corpus().decode()[:100_000]
    tokenizer = save_tokenizer(tmp_path / "tokenizer", corpus)
    cfg = dataclasses.replace(params.parse(params.read(ROOT / "presets/shakespeare.yaml")).data, sequence_length=16)
    tokenised = dataclasses.replace(cfg, tokenizer=str(tokenizer))
    split = data.prepare(tokenised)
    assert split["vocab_size"] == 300 and split["num_classes"] == 300
    assert len(split["train"]) < len(data.prepare(cfg)["train"])  # fewer tokens than bytes: merges happened
    ids = text.encode(text.corpus()[:50], tokenised)
    assert ids.tolist() == text.tokenizer(str(tokenizer))(corpus[:50])["input_ids"] and ids.max() < 300
    parts = data.load(split, tokenised)
    assert parts.tokens == inputs.Tokens(16, 300) and 256 <= int(parts.train.tokens.max()) < 300  # merged ids


@pytest.mark.parametrize(
    "change, expected",
    [
        ("missing", "model.name = 'hf:{dir}': no such directory: save a Hugging Face causal LM there"),
        ("no config", "model.name = 'hf:{dir}': no config.json in it"),
        ("bert", "model.name = 'hf:{dir}': model_type 'bert' is not supported; expected one of gpt2, opt, llama"),
        ("small vocabulary", "the data has 256 token ids, the model's vocabulary 100: set data.tokenizer"),
        ("short context", "data.sequence_length = 16 is longer than the model's 8 positions"),
        ("no tokenizer", "data.tokenizer = '{dir}/tokenizer': no such directory"),
    ],
)
def test_a_model_directory_that_cannot_serve_stops_the_check_stage_in_one_line(tmp_path, change, expected):
    directory = tmp_path / "model"
    tokenizer = None
    if change == "no config":
        directory.mkdir()
    elif change == "bert":
        directory.mkdir()
        (directory / "config.json").write_text(json.dumps({"model_type": "bert"}))
    elif change == "small vocabulary":
        save_causal_lm(directory, "gpt2", vocab=100)
    elif change == "short context":
        save_causal_lm(directory, "opt")
        config = json.loads((directory / "config.json").read_text())
        (directory / "config.json").write_text(json.dumps(config | {"max_position_embeddings": 8}))
    elif change == "no tokenizer":
        save_causal_lm(directory, "gpt2")
        tokenizer = tmp_path / "tokenizer"
    with pytest.raises(UserError) as stopped:
        inspect_model(hf_params(directory, tokenizer))
    message = str(stopped.value)
    assert expected.format(dir=directory if change != "no tokenizer" else tmp_path) in message and "\n" not in message


def test_a_hf_models_output_is_cut_to_the_tokenizers_vocabulary(saved):
    model = loaded(saved["qwen2"], vocab=200)  # Qwen pads its output layer past its tokenizer's ids
    x = torch.randint(0, 200, (2, 16))
    assert model(x).shape == (2, 16, 200) and model.lm.lm_head.out_features == 300
    assert np.isclose(float(model.vocab_size), 200)


def test_the_stages_that_build_or_load_a_hf_model_depend_on_its_files(saved):
    from prunebench import sources

    model = hf_params(saved["opt"]).model
    built = sources.manifest(ROOT / "stages/train.py", model)
    directory = saved["opt"].resolve().as_posix()
    assert {f"{directory}/config.json", f"{directory}/model.safetensors"} <= set(built)
    assert not any(name.startswith(directory) for name in sources.manifest(ROOT / "stages/compare.py", model))


def test_removing_the_width_of_a_tied_gpt2_keeps_its_head_tied_through_a_reload(saved, tmp_path):
    model = loaded(saved["gpt2"])
    found = coupling.groups(model, SHAPE)
    width = next(g for g in found if g.kind == "width")
    pruned = surgery.remove(model, {width.root: [0, 1, 2, 3]}, SHAPE, found)
    lm = pruned.lm
    assert lm.transformer.wte.weight.shape == (300, 28) and lm.lm_head.weight is lm.transformer.wte.weight
    x = inputs.example(SHAPE, 2, random=True)
    spec = models.spec({"name": f"hf:{saved['gpt2']}"}, vocab_size=256, sequence_length=16)
    modelfile.save(tmp_path / "m.pt", pruned, spec)
    reloaded = modelfile.load(tmp_path / "m.pt")[0].eval()
    with torch.no_grad():
        assert torch.equal(reloaded(x), pruned(x))
    assert reloaded.lm.lm_head.weight is reloaded.lm.transformer.wte.weight
