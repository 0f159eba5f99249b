"""Issue 33: language modelling as a task — text without downloads, the embedded GPT, perplexity
in the evaluation and in the paired statistics, and one-line faults for bad text."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import math

import numpy as np
import pytest
import torch
from torch import nn

from prunebench import params
from prunebench.pruning import coupling, surgery
from prunebench.pruning.budget import WeightCost
from prunebench.report.results import load_predictions, save_predictions
from prunebench.report.stats import rank
from prunebench.task import TASKS
from prunebench.training import data, inputs, measure, modelfile, models, text
from prunebench.training.batches import batches
from prunebench.training.loops import evaluate

from helpers import ROOT

LM = TASKS["language_modelling"]


def text_cfg(tmp_path=None, **changes) -> params.Data:
    base = params.load(params.PARAMS_FILE).data
    root = str(tmp_path) if tmp_path else base.root
    return dataclasses.replace(base, name="shakespeare", root=root, sequence_length=16, **changes)


def tiny_gpt(length: int = 16) -> nn.Module:
    torch.manual_seed(0)
    description = {"name": "gpt", "dim": 16, "depth": 2, "heads": 4}
    return models.build(models.spec(description, vocab_size=text.VOCAB, sequence_length=length)).eval()


class Uniform(nn.Module):
    """Predicts every token with the same probability: zero logits over the vocabulary."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(()))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.scale * torch.ones(*tokens.shape, text.VOCAB)


def test_the_corpus_is_the_checksummed_text_split_into_contiguous_parts_of_whole_sequences():
    cfg = text_cfg()
    raw = gzip.decompress(text.CORPUS.read_bytes())
    assert hashlib.sha256(raw).hexdigest() == text.CORPUS_SHA256 and len(raw) == 1_115_394
    split = data.prepare(cfg)
    parts = data.load(split, cfg)
    train, val, test = parts.train.tokens, parts.val.tokens, parts.test.tokens
    assert train.shape[1] == val.shape[1] == test.shape[1] == 17  # sequence_length inputs + the next token
    assert bytes(train[0].tolist()) == raw[:17] and bytes(test[-1].tolist()) in raw[-40:]
    assert (train[1:, 0] == train[:-1, -1]).all()  # each sequence starts where the last one's targets end
    assert len(split["test"]) == (round(len(raw) * 0.15) - 1) // 16
    assert parts.input_shape == inputs.Tokens(16, 256) and parts.task is LM


def test_a_model_that_predicts_uniformly_has_the_vocabulary_size_as_perplexity():
    cfg = text_cfg()
    parts = data.load(data.prepare(cfg), cfg)
    found = evaluate(Uniform(), batches(parts.val, parts, cfg, torch.device("cpu")), torch.device("cpu"), True)
    # exactly 256 but for the float32 sums of the per-batch losses
    assert found["perplexity"] == pytest.approx(256, rel=1e-5) and found["loss"] == pytest.approx(
        math.log(256), rel=1e-5
    )
    assert found["outcome"].shape == (len(parts.val),) and found["outcome"].dtype == torch.float32


def test_a_language_models_outcomes_are_its_sequences_losses_and_their_mean_is_its_loss():
    cfg = text_cfg()
    parts = data.load(data.prepare(cfg), cfg)
    found = evaluate(tiny_gpt(), batches(parts.test, parts, cfg, torch.device("cpu")), torch.device("cpu"), True)
    assert float(found["outcome"].double().mean()) == pytest.approx(found["loss"], rel=1e-6)
    assert found["perplexity"] == pytest.approx(math.exp(found["loss"]))


def test_per_sequence_losses_survive_the_predictions_file_beside_right_or_wrong_outcomes(tmp_path):
    losses, right = np.linspace(1.0, 2.0, 7, dtype=np.float32), np.array([True, False, True])
    save_predictions(tmp_path / "p.npz", {"lm": losses, "cnn": right})
    loaded = load_predictions(tmp_path / "p.npz")
    assert np.array_equal(loaded["lm"], losses) and loaded["lm"].dtype == np.float32
    assert np.array_equal(loaded["cnn"], right) and loaded["cnn"].dtype == bool


def sequence_losses(seeds: int, sequences: int, level: float, rng: np.random.Generator) -> np.ndarray:
    return level + rng.gamma(4.0, 0.1, size=(seeds, sequences))


def test_the_paired_bootstrap_on_sequence_losses_calls_a_worse_model_worse_and_a_copy_tied():
    rng = np.random.default_rng(0)
    best = sequence_losses(3, 600, 1.5, rng)
    worse = best + 0.02 + rng.normal(0, 0.05, best.shape)  # every sequence a little worse, with noise
    noisy = best + rng.normal(0, 0.05, best.shape)  # as good on average
    ranked = {s.method: s for s in rank({"best": best, "worse": worse, "noisy": noisy, "copy": best}, 0.95, 2000, LM)}
    perplexity = float(np.exp(best.mean(1)).mean())
    assert ranked["best"].value == pytest.approx(perplexity) or ranked["copy"].value == pytest.approx(perplexity)
    assert not ranked["worse"].tied and 0 < ranked["worse"].low < ranked["worse"].difference < ranked["worse"].high
    assert ranked["worse"].difference == pytest.approx(perplexity * (math.exp(0.02) - 1), rel=0.2)
    assert ranked["noisy"].tied and ranked["copy"].tied


def test_the_gpts_heads_and_neurons_are_removed_and_the_pruned_model_reloads(tmp_path):
    model, shape = tiny_gpt(), inputs.Tokens(16, 256)
    found = coupling.groups(model, shape)
    assert {g.kind for g in found} == {"channel", "width", "head"} and not coupling.frozen_groups(model, shape)
    head = next(g for g in found if g.kind == "head")
    neurons = next(g for g in found if g.kind == "channel")
    pruned = surgery.remove(model, {head.root: [0], neurons.root: list(range(8))}, shape, found)
    x = inputs.example(shape, 2, random=True)
    assert pruned(x).shape == (2, 16, 256)
    attention = pruned.get_submodule(head.root.rpartition(".")[0])
    assert attention.num_heads == 3 and measure.count_params(pruned, shape) < measure.count_params(tiny_gpt(), shape)
    spec = models.spec({"name": "gpt", "dim": 16, "depth": 2, "heads": 4}, vocab_size=256, sequence_length=16)
    modelfile.save(tmp_path / "m.pt", pruned, spec)
    reloaded = modelfile.load(tmp_path / "m.pt")[0].eval()
    assert torch.equal(reloaded(x), pruned(x))


def test_macs_of_a_gpt_are_per_token_of_a_sequence_attention_products_included():
    length, dim, depth, hidden = 16, 16, 2, 64
    counted = sum(measure.layer_macs(tiny_gpt(length), inputs.Tokens(length, 256)).values())
    per_block = length * (dim * 3 * dim + dim * dim + 2 * dim * hidden) + 2 * length * length * dim
    norms = 4 * length * dim * (2 * depth + 1)  # each LayerNorm 4 per element, as thop counts an affine norm
    assert counted == (depth * per_block + length * dim * 256 + norms) / length


def test_a_language_models_parameters_are_its_blocks_linear_weights_as_llm_papers_count():
    dim, depth, hidden, shape = 16, 2, 64, inputs.Tokens(16, 256)
    model = tiny_gpt()
    linear = depth * (dim * 3 * dim + dim * dim + 2 * dim * hidden)  # qkv, proj, the MLP's two layers
    assert measure.count_params(model, shape) == linear < sum(p.numel() for p in model.parameters())
    masks = {
        f"{name}.weight": torch.rand_like(layer.weight) < 0.5 for name, layer in models.prunable_layers(model).items()
    }
    cost = WeightCost(model, shape)
    assert cost.base.params == linear and cost(masks).params == sum(int(m.sum()) for m in masks.values())
    head = next(g for g in coupling.groups(model, shape) if g.kind == "head")
    pruned = surgery.remove(model, {head.root: [0]}, shape)
    assert measure.count_params(pruned, shape) == linear - 4 * dim * (dim // 4)  # qkv rows and proj columns


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("train.txt", b"\xff\xfe not utf-8", "train.txt: not UTF-8 text (byte 0 is 0xff)"),
        ("val.txt", b"some text\0with a NUL", "val.txt: not text (a NUL byte at 9)"),
        ("test.txt", b"short", "test.txt: 5 tokens, too short for one sequence of data.sequence_length + 1 = 17"),
        ("test.txt", None, "test.txt not found: put the train.txt, val.txt and test.txt of your text there"),
    ],
)
def test_bad_text_files_stop_the_data_stage_with_one_line(tmp_path, name, content, expected):
    for part in ("train", "val", "test"):
        (tmp_path / f"{part}.txt").write_text("To be, or not to be: that is the question. " * 10)
    if content is None:
        (tmp_path / name).unlink()
    else:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(data.DataMissing) as stopped:
        data.prepare(dataclasses.replace(text_cfg(tmp_path), name="text"))
    message = str(stopped.value)
    assert "\n" not in message and message.endswith(expected) and message.startswith("data.root: ")


def test_the_users_text_files_become_their_own_parts(tmp_path):
    for part, words in (("train", "alpha "), ("val", "beta "), ("test", "gamma ")):
        (tmp_path / f"{part}.txt").write_text(words * 20)
    cfg = dataclasses.replace(text_cfg(tmp_path), name="text")
    parts = data.load(data.prepare(cfg), cfg)
    assert bytes(parts.val.tokens[0].tolist()).startswith(b"beta beta")
    assert bytes(parts.test.tokens[0].tolist()).startswith(b"gamma")
    assert len(parts.train) == (120 - 1) // 16


@pytest.mark.parametrize(
    "model, data_name, expected",
    [
        ("gpt", "digits", "model.name = 'gpt': a language model, but data.name = 'digits' is for classification"),
        ("cnn", "shakespeare", "model.name = 'cnn': a model of images, but data.name = 'shakespeare' is for language"),
    ],
)
def test_a_model_for_another_task_stops_the_check_stage_in_one_line(model, data_name, expected):
    from prunebench.errors import UserError
    from prunebench.stages.check import inspect_model

    raw = params.read(params.PARAMS_FILE)
    raw["model"]["name"], raw["data"]["name"] = model, data_name
    with pytest.raises(UserError) as stopped:
        inspect_model(params.parse(raw))
    assert str(stopped.value).startswith(expected) and "\n" not in str(stopped.value)


def test_the_check_stage_builds_the_gpt_for_the_text_and_finds_its_heads_and_neurons():
    from prunebench.stages.check import inspect_model

    raw = params.read(ROOT / "presets/shakespeare.yaml")
    found = inspect_model(params.parse(raw))
    assert found.kinds == {"channel": 4, "width": 1, "head": 4} and not found.frozen and not found.batchnorm


def test_a_weight_method_that_removes_every_counted_weight_reads_infinitely_fewer_not_a_crash():
    """A language model's MACs per token keep its output layer and attention products, so a deep
    MACs target can take every weight of its blocks' linear layers (seen on a GPT-2 with a
    512-token vocabulary at 4×): the row says so instead of stopping the concatenate stage."""
    from prunebench.layouts import DEPLOY_COLUMNS
    from prunebench.report.results import result_rows

    base = {"seed": 0, "accuracy": 0.2, "loss": 3.5, "perplexity": 33.1, "params": 100, "nonzeros": 100}
    base |= {"macs": 10.0, "macs_sparse": 10.0}
    pruned = {"method": "magnitude", "ratio": 0.75, "seed": 0, "kept": 0.3, "nonzeros": 0, "macs_sparse": 3.0}
    tuned = {"ratio": 0.75, "seed": 0, "finetuned_accuracy": 0.1, "finetuned_perplexity": 90.0}
    deployed = {"ratio": 0.75, "seed": 0, **dict.fromkeys(DEPLOY_COLUMNS)}
    [row] = result_rows([base], [pruned], [tuned], [deployed])
    assert row["params_reduction"] == math.inf and row["sparsity"] == 1.0
    assert row["macs_reduction"] == pytest.approx(10 / 3) and row["perplexity_change"] == pytest.approx(56.9)
