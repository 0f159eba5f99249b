"""Small builders the tests share (fixtures live in conftest.py; no test module imports another)."""

from __future__ import annotations

import struct
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from prunebench.params import MethodEntry
from prunebench.pruning import methods
from prunebench.pruning.methods import Context, Method
from prunebench.training import inputs, models, text

ROOT = Path(__file__).resolve().parents[1]
IMAGE_MODELS = [name for name, family in models.MODELS.items() if family.task == "classification"]  # not the GPT


def small_cnn(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return models.build(models.spec({"name": "cnn", "width": 8, "hidden": 16}, 1, 10, 8)).eval()


GPT_SHAPE = inputs.Tokens(16, text.VOCAB)  # 16 byte tokens


def tiny_gpt() -> torch.nn.Module:
    """The embedded GPT at width 16: 2 blocks of 4 heads, byte tokens."""
    torch.manual_seed(0)
    description = {"name": "gpt", "dim": 16, "depth": 2, "heads": 4}
    return models.build(models.spec(description, vocab_size=text.VOCAB, sequence_length=16)).eval()


def gpt_context() -> Context:
    """One batch of 8 random byte sequences, next-token labels, as calibration data."""
    torch.manual_seed(1)
    tokens = torch.randint(0, text.VOCAB, (8, 17))
    return context([(tokens[:, :-1], tokens[:, 1:])], input_shape=GPT_SHAPE)


def make_method(key: str, entry: dict | None = None) -> Method:
    """The method a params.yaml entry `methods.<key>: <entry>` builds."""
    return methods.create(MethodEntry.of(key, entry))


def context(batches: Iterable = (), seed: int = 0, input_shape: tuple[int, ...] = (1, 8, 8)) -> Context:
    """A method's context on the CPU: `batches` as calibration data, randomness from `seed`, digits-sized inputs."""
    batches = list(batches)
    return Context(
        batches=lambda: iter(batches),
        device=torch.device("cpu"),
        generator=torch.Generator().manual_seed(seed),
        input_shape=input_shape,
    )


def fine_tune_keeping_masks(model: torch.nn.Module, masks: dict, splits, params) -> None:
    """One epoch of fine-tuning at lr 0.1 on the CPU, the masks re-applied after every step (as
    the finetune stage keeps them); `params` is the typed Params."""
    from dataclasses import replace

    from prunebench.pruning.selection import mask_keeper
    from prunebench.training.batches import batches
    from prunebench.training.loops import fit

    cpu = torch.device("cpu")
    fit(
        model,
        batches(splits.train, splits, params.data, cpu, train=True),
        batches(splits.val, splits, params.data, cpu),
        replace(params.finetune, epochs=1, lr=0.1),
        cpu,
        after_step=mask_keeper(model, masks),
    )


def prunable_zero_fraction(model: torch.nn.Module) -> float:
    weights = [m.weight for m in models.prunable_layers(model).values()]
    return sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)


def write_mnist_files(raw: Path, parts: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """MNIST's raw files as torchvision reads them ("train" and "t10k": images n×28×28, labels n),
    in the idx format: magic (0, 0, dtype 0x08 = ubyte, ndim), big-endian sizes, data."""
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, (images, labels) in parts.items():
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            (raw / f"{prefix}-{kind}-ubyte").write_bytes(
                struct.pack(">BBBB", 0, 0, 8, array.ndim)
                + struct.pack(f">{array.ndim}I", *array.shape)
                + array.astype(np.uint8).tobytes()
            )


def save_causal_lm(directory: Path, model_type: str, vocab: int = 300, seed: int = 0) -> Path:
    """A tiny random-weight Hugging Face causal LM of `model_type` (gpt2, opt, llama, qwen2), saved
    as `save_pretrained` saves one: 2 blocks, width 32, 4 heads (2 key-value heads where the
    architecture groups them), 64 positions."""
    from prunebench.training.models.huggingface import transformers

    hf = transformers()
    ids = {"bos_token_id": 0, "eos_token_id": 0, "pad_token_id": 0}
    shape = {"vocab_size": vocab, "max_position_embeddings": 64, "hidden_size": 32, "num_hidden_layers": 2}
    shape["num_attention_heads"] = 4
    configs = {
        "gpt2": lambda: hf.GPT2Config(**shape, **ids),
        "opt": lambda: hf.OPTConfig(ffn_dim=64, word_embed_proj_dim=32, **shape, **ids),
        **{
            name: lambda config=config: config(intermediate_size=64, num_key_value_heads=2, **shape, **ids)
            for name, config in (("llama", hf.LlamaConfig), ("qwen2", hf.Qwen2Config))
        },
    }
    torch.manual_seed(seed)
    hf.AutoModelForCausalLM.from_config(configs[model_type]()).save_pretrained(directory)
    return directory


def save_tokenizer(directory: Path, text: str, vocab: int = 300) -> Path:
    """A byte-level BPE tokenizer trained on `text`, saved as a model's tokenizer is saved."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers, trainers
    from tokenizers.models import BPE

    from prunebench.training.models.huggingface import transformers

    tokenizer = Tokenizer(BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tokenizer.train_from_iterator([text], trainer)
    transformers().PreTrainedTokenizerFast(tokenizer_object=tokenizer).save_pretrained(directory)
    return directory
