"""Transformer building blocks whose heads, MLP neurons and embedding width prune apart.

`Attention` keeps timm's layout: one packed input projection `qkv` whose output rows are
[3, heads, head_dim], and an output projection `proj` that reads heads · head_dim features, with
`num_heads`, `head_dim` and `attn_dim` as attributes. The attention's own width (heads · head_dim)
is independent of the embedding's, so removing a head cuts rows of `qkv` and columns of `proj`,
and narrowing the embedding cuts the other sides, each leaving a model that runs. timm's own
`Attention` has the same layout, so the same surgery serves both.

`nn.MultiheadAttention` ties its attention width to the embedding's (its input projection is a
bare [3E, E] parameter), so neither a head nor a channel of the width can leave it: a model that
uses it for self-attention gets `MultiheadSelfAttention` in its place (`adapt`), the same
function with the same call signature (`nn.TransformerEncoderLayer` calls it as it calls
`nn.MultiheadAttention`) on `Attention`'s layout.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Layout = tuple[int, int, int]  # a projection's rows (or columns) as [before, heads, after]


@dataclass(frozen=True)
class Heads:
    """Where an attention module's heads live: its input projections (child names) and how their
    output rows group into heads, its output projection and how its input columns do, and the
    attributes that count heads (their value is the head count times the number given)."""

    count: int
    inputs: tuple[tuple[str, Layout], ...]
    output: tuple[str, Layout]
    per_head: tuple[tuple[str, int], ...]


def packed_heads(module: nn.Module) -> Heads | None:
    """The heads of an attention module on timm's layout (`Attention`, timm's own): `qkv` rows
    [3, heads, head_dim], `proj` columns [heads, head_dim]; None for any other module, and for
    timm's variants whose extra layers span the attention width (`scale_norm`, `gated`)."""
    qkv, proj = getattr(module, "qkv", None), getattr(module, "proj", None)
    heads, width = getattr(module, "num_heads", None), getattr(module, "head_dim", None)
    if not (isinstance(qkv, nn.Linear) and isinstance(proj, nn.Linear) and isinstance(heads, int)):
        return None
    if not isinstance(width, int) or qkv.out_features != 3 * heads * width or proj.in_features != heads * width:
        return None
    extras = [getattr(module, name, None) for name in ("norm", "gate")]
    if any(extra is not None and not isinstance(extra, nn.Identity) for extra in extras):
        return None
    return Heads(
        heads, (("qkv", (3, heads, width)),), ("proj", (1, heads, width)), (("num_heads", 1), ("attn_dim", width))
    )


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, head_dim: int | None = None, bias: bool = True, causal: bool = False):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = head_dim or dim // num_heads
        self.attn_dim = self.num_heads * self.head_dim
        self.causal = causal
        self.qkv = nn.Linear(dim, 3 * self.attn_dim, bias=bias)
        self.proj = nn.Linear(self.attn_dim, dim, bias=bias)

    def attend(self, x: Tensor, mask: Tensor | None = None, dropout: float = 0.0) -> Tensor:
        """x: (batch, tokens, dim); `mask`: added to the attention logits, or None."""
        batch, tokens, _ = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=self.causal and mask is None
        )
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, self.attn_dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.attend(x)


class MultiheadSelfAttention(Attention):
    """`nn.MultiheadAttention` used as self-attention, on `Attention`'s layout; called as
    `nn.MultiheadAttention` is, it returns (output, None)."""

    _qkv_same_embed_dim = False  # keeps nn.TransformerEncoderLayer off its fused path, which needs the original

    def __init__(self, source: nn.MultiheadAttention):
        super().__init__(source.embed_dim, source.num_heads, bias=source.in_proj_bias is not None)
        self.batch_first = source.batch_first
        self.dropout = source.dropout
        with torch.no_grad():
            self.qkv.weight.copy_(source.in_proj_weight)
            self.proj.weight.copy_(source.out_proj.weight)
            if source.in_proj_bias is not None:
                self.qkv.bias.copy_(source.in_proj_bias)
                self.proj.bias.copy_(source.out_proj.bias)

    @property
    def in_proj_bias(self) -> Tensor | None:  # read by nn.TransformerEncoderLayer's checks
        return self.qkv.bias

    def forward(  # type: ignore[override]  # nn.MultiheadAttention's signature
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = True,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, None]:
        if key is not query or value is not query:
            raise ValueError("MultiheadSelfAttention: self-attention only (query, key and value one tensor)")
        x = query if self.batch_first else query.transpose(0, 1)
        mask = _additive(attn_mask, x.dtype)
        if mask is not None and mask.dim() == 3:  # (batch · heads, L, S)
            mask = mask.view(x.shape[0], self.num_heads, *mask.shape[1:])
        padding = _additive(key_padding_mask, x.dtype)
        if padding is not None:  # (batch, S): masks keys, for every head and query
            padding = padding.view(x.shape[0], 1, 1, -1)
            mask = padding if mask is None else mask + padding
        if mask is None and is_causal:
            tokens = x.shape[1]
            mask = torch.full((tokens, tokens), float("-inf"), dtype=x.dtype, device=x.device).triu(1)
        out = self.attend(x, mask, self.dropout if self.training else 0.0)
        return (out if self.batch_first else out.transpose(0, 1)), None


def _additive(mask: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """nn.MultiheadAttention's masks as sdpa's additive one: True (or -inf) = not attended."""
    if mask is None or mask.dtype != torch.bool:
        return mask
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, float("-inf"))


class Mlp(nn.Module):
    """The block's feed-forward part: fc1, GELU, fc2 (timm's names)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """A pre-norm transformer block: x + attention(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, dim: int, heads: int, hidden: int, causal: bool = False):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, causal=causal)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, hidden)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def differentiable_attention() -> AbstractContextManager:
    """Scaled dot-product attention through its composite (math) kernel while the block runs:
    the fused CPU kernels have no second derivative and no forward-mode rule, which Hessian-vector
    products and higher Taylor orders need."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel(SDPBackend.MATH)


def adapt(model: nn.Module) -> nn.Module:
    """`model` with every `nn.MultiheadAttention` that can be (self-attention, one embedding
    size, no extra key/value biases) replaced by `MultiheadSelfAttention`, same weights."""
    for name, module in list(model.named_modules()):
        if (
            name
            and isinstance(module, nn.MultiheadAttention)
            and module._qkv_same_embed_dim
            and module.bias_k is None
            and not module.add_zero_attn
        ):
            parent, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent), attr, MultiheadSelfAttention(module))
    return model
