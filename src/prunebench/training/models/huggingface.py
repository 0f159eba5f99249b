"""Hugging Face causal language models from a local directory: `model.name: hf:<directory>`.

The directory is what `save_pretrained` writes (`config.json`, and the weights as
`model.safetensors` or `pytorch_model.bin`); nothing is ever fetched from the Hub
(`local_files_only`). The architecture comes from its `config.json`, built by `transformers`
for the families whose blocks prunebench knows: GPT-2, OPT, and Llama-style blocks (Llama,
Qwen2, Qwen3, Mistral). `model.weights` names the directory the weights come from (usually the
same one); without it the architecture starts freshly initialised and the train stage trains it.
The data's tokens must be the model's: `data.tokenizer` names the directory of its tokenizer.

The model is wrapped (`CausalLM`) to take token ids and return logits [batch, tokens, vocab],
as the embedded GPT does, cut to the data's vocabulary (Qwen pads its output layer past the
tokenizer's). GPT-2's `Conv1D` layers are linear layers with the weight stored transposed: they
become `nn.Linear`, so that every method prunes them and every count counts them. Attention runs
the eager implementation (plain matrix products, which the MACs count sees and ONNX exports).
The output layer, tied to the token embedding or not, is never pruned (it is the model's last
linear layer, as a classifier's is).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from prunebench.training.models.family import PREFIXES, Family, Hints, ModelError, Pretrained, WeightsError
from prunebench.training.models.transformer import Heads

SUPPORTED = ("gpt2", "opt", "llama", "qwen2", "qwen3", "mistral")  # config.json's model_type
ATTENTION = "eager"  # plain products: counted by `training.macs`, exported by ONNX


def transformers() -> Any:
    """transformers, imported after torchvision is made importable (it imports it), with its own
    progress bars and advice off: the stage's lines are the ones a user reads."""
    from prunebench.training._torchvision import import_torchvision

    import_torchvision()
    import transformers as hf

    hf.logging.set_verbosity_error()
    hf.utils.logging.disable_progress_bar()
    return hf


def config_of(directory: str, where: str) -> Any:
    """The model configuration the directory holds; a missing directory or an architecture
    prunebench cannot prune is one line starting with `where` (the key and its value)."""
    path = Path(directory)
    if not (path / "config.json").is_file():
        what = "no such directory" if not path.is_dir() else "no config.json in it"
        raise ModelError(f"{where}: {what}: save a Hugging Face causal LM there (save_pretrained)")
    config = transformers().AutoConfig.from_pretrained(path, local_files_only=True)
    if config.model_type not in SUPPORTED:
        raise ModelError(
            f"{where}: model_type {config.model_type!r} is not supported; expected one of " + ", ".join(SUPPORTED)
        )
    return config


class CausalLM(nn.Module):
    """A Hugging Face causal LM as prunebench runs models: token ids in, next-token logits out."""

    def __init__(self, lm: nn.Module, vocab_size: int):
        super().__init__()
        self.lm = lm
        self.vocab_size = vocab_size

    def tie_weights(self) -> None:
        """Tie the output layer to the token embedding again where the configuration ties them:
        removing the width or rebuilding from a file gives each its own tensor."""
        lm: Any = self.lm
        lm.tie_weights()

    def forward(self, tokens: Tensor) -> Tensor:
        # an explicit mask: without one, transformers looks for packed sequences with `torch.diff`,
        # which ONNX cannot export
        mask = torch.ones_like(tokens)
        return self.lm(input_ids=tokens, attention_mask=mask, use_cache=False).logits[..., : self.vocab_size]


def linear_layers(model: nn.Module) -> nn.Module:
    """`model` with every GPT-2 `Conv1D` (weight [in, out]) replaced by the `nn.Linear` it is."""
    conv1d = transformers().pytorch_utils.Conv1D
    for name, module in list(model.named_modules()):
        if isinstance(module, conv1d):
            inputs, outputs = module.weight.shape
            linear = nn.Linear(inputs, outputs, dtype=module.weight.dtype, device=module.weight.device)
            with torch.no_grad():
                linear.weight.copy_(module.weight.T)
                linear.bias.copy_(module.bias)
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, linear)
    return model


def _wrapped(lm: nn.Module, vocab_size: int, sequence_length: int, where: str) -> CausalLM:
    config: Any = lm.config
    vocab = config.get_text_config().vocab_size
    if vocab_size > vocab:
        raise ModelError(
            f"{where}: the data has {vocab_size} token ids, the model's vocabulary "
            f"{vocab}: set data.tokenizer to the model's tokenizer directory"
        )
    positions = getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)
    if positions is not None and sequence_length > positions:
        raise ModelError(
            f"{where}: data.sequence_length = {sequence_length} is longer than the model's {positions} positions"
        )
    return CausalLM(linear_layers(lm), vocab_size)


def heads(module: nn.Module) -> Heads | None:
    """The heads of a Hugging Face attention module: GPT-2's packed `c_attn` (rows [3, heads,
    width]) and `c_proj`; OPT's `q_proj`, `k_proj`, `v_proj` and `out_proj`; Llama-style grouped
    query attention, where a unit is one key-value head with the query heads that share it (its
    projections keep the head count in their shapes: no attribute counts them). None for any
    other module."""
    width: Any = getattr(module, "head_dim", None)
    if not isinstance(width, int):
        return None
    n: Any = getattr(module, "num_heads", None)
    if isinstance(getattr(module, "c_attn", None), nn.Linear):  # GPT-2, after `linear_layers`
        per_head = (("num_heads", 1), ("split_size", width))
        return Heads(n, (("c_attn", (3, n, width)),), ("c_proj", (1, n, width)), per_head)
    if isinstance(getattr(module, "out_proj", None), nn.Linear):  # OPT
        projections = tuple((name, (1, n, width)) for name in ("q_proj", "k_proj", "v_proj"))
        return Heads(n, projections, ("out_proj", (1, n, width)), (("num_heads", 1),))
    keys, share = getattr(module, "k_proj", None), getattr(module, "num_key_value_groups", 0)
    if isinstance(getattr(module, "o_proj", None), nn.Linear) and isinstance(keys, nn.Linear):  # Llama, Qwen
        kv = keys.out_features // width
        projections = (("q_proj", (1, kv, share * width)), ("k_proj", (1, kv, width)), ("v_proj", (1, kv, width)))
        return Heads(kv, projections, ("o_proj", (1, kv, share * width)), ())
    return None


@dataclass(frozen=True)
class HFWeights(Pretrained):
    """The weights of a `save_pretrained` directory (`model.weights`)."""

    def state(self, description: dict[str, Any], model: nn.Module) -> dict[str, Tensor]:
        path = Path(description["weights"])
        config_of(str(path), f"model.weights = {str(path)!r}")
        lm = transformers().AutoModelForCausalLM.from_pretrained(
            path, local_files_only=True, attn_implementation=ATTENTION, dtype=torch.float32
        )
        if not isinstance(model, CausalLM):
            raise WeightsError(f"model.weights = {str(path)!r}: the model is not a Hugging Face causal LM")
        return CausalLM(linear_layers(lm), model.vocab_size).state_dict()

    def preprocessing(self, description: dict[str, Any]) -> dict[str, Any] | None:
        return None  # token ids need none


@cache
def hf_family(directory: str) -> Family:
    """The family of `hf:<directory>`."""
    where = f"model.name = {f'hf:{directory}'!r}"
    config_of(directory, where)

    def factory(vocab_size: int, sequence_length: int) -> nn.Module:
        hf = transformers()
        config = config_of(directory, where)
        lm = hf.AutoModelForCausalLM.from_config(config, attn_implementation=ATTENTION, dtype=torch.float32)
        return _wrapped(lm, vocab_size, sequence_length, where)

    return Family(f"hf:{directory}", factory, HFWeights(), Hints(heads=heads))


PREFIXES.register("hf")(hf_family)
