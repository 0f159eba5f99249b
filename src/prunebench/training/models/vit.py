"""The embedded Vision Transformer: small patches, a class token and a learned position embedding,
pre-norm blocks (`transformer.Block`), small enough to train on the CPU in minutes (digits: 2×2
patches of the 8×8 images, 16 tokens and the class token)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from prunebench.training.models.family import Hints, register
from prunebench.training.models.transformer import Block


class VisionTransformer(nn.Module):
    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int,
        patch: int,
        dim: int,
        depth: int,
        heads: int,
        hidden: int,
    ):
        super().__init__()
        if image_size % patch:
            raise ValueError(f"model.patch = {patch}: expected a divisor of the image size {image_size}")
        self.patch_embed = nn.Conv2d(in_channels, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + (image_size // patch) ** 2, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads, hidden) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)  # (batch, patches, dim)
        tokens = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), tokens], dim=1) + self.pos_embed
        return self.head(self.norm(self.blocks(tokens))[:, 0])


@register("vit", hints=Hints(unwrapped={"cls_token": -1, "pos_embed": -1}))
def vit(
    in_channels: int,
    num_classes: int,
    image_size: int,
    patch: int = 2,
    dim: int = 32,
    depth: int = 2,
    heads: int = 4,
    mlp_ratio: float = 2.0,
) -> nn.Module:
    """A ViT of `depth` blocks of `heads` heads on `dim`-wide tokens of `patch` × `patch` pixels."""
    return VisionTransformer(in_channels, num_classes, image_size, patch, dim, depth, heads, round(dim * mlp_ratio))
