"""The embedded GPT: a small decoder-only transformer for language modelling, small enough to
train on the CPU in minutes (the shakespeare default: 4 blocks of width 128, 0.8 M parameters).

Token and learned position embeddings, pre-norm causal blocks (`transformer.Block`, whose heads
and MLP neurons prune apart as the ViT's do), a final LayerNorm and an untied output layer (the
output layer is never pruned, as a classifier's is not). The logits are [batch, tokens, vocab]:
each position predicts the next token.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from prunebench.training.models.family import Hints, register
from prunebench.training.models.transformer import Block


class GPT(nn.Module):
    def __init__(self, vocab_size: int, sequence_length: int, dim: int, depth: int, heads: int, hidden: int):
        super().__init__()
        self.tok_embed = nn.Embedding(vocab_size, dim)
        self.pos_embed = nn.Parameter(torch.randn(1, sequence_length, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads, hidden, causal=True) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab_size, bias=False)
        nn.init.normal_(self.tok_embed.weight, std=0.02)

    def forward(self, tokens: Tensor) -> Tensor:
        x = self.tok_embed(tokens) + self.pos_embed[:, : tokens.shape[1]]
        return self.head(self.norm(self.blocks(x)))


@register("gpt", hints=Hints(unwrapped={"pos_embed": -1}))
def gpt(
    vocab_size: int, sequence_length: int, dim: int = 128, depth: int = 4, heads: int = 4, mlp_ratio: float = 4.0
) -> nn.Module:
    """A GPT of `depth` causal blocks of `heads` heads on `dim`-wide token embeddings."""
    return GPT(vocab_size, sequence_length, dim, depth, heads, round(dim * mlp_ratio))
