"""The LION vision transformer, laid out exactly like the public LION image model.

Same modules, parameter names, shapes and forward order as the public LION image code's model, so a state_dict
trained there loads here with strict=True and gives the same outputs:
patch_embed.proj (Conv2d, kernel = stride = patch) -> class token ALWAYS prepended -> + pos_embed (optional)
-> pre-norm blocks (x + attn(norm1(x)); x + mlp(norm2(x)), GELU MLP) -> norm -> class token or mean over all
N+1 tokens -> head. LayerNorms use eps 1e-6. Dropout / drop-path are training-only and left out.
natural=True is the public `order='S'` model (LION-D♮ / LION-S♮): each mixer also has `a2_i` and sees the patch
grid, which the model reads off the image size (so it runs at any size its position embedding allows).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .attention import LionAttention
from .config import ModelConfig


@dataclass(frozen=True)
class VisionConfig(ModelConfig):
    """A LION ViT. Defaults: vit-tiny at 224 px, patch 16, 1000 classes, position embeddings on and mean
    pooling (the public model class's defaults)."""

    kind = "vision"

    img_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    num_classes: int = 1000
    pos_embed: bool = True
    cls_pooling: bool = False
    natural: bool = False

    def _positive_fields(self) -> tuple[str, ...]:
        return (*super()._positive_fields(), "img_size", "patch_size", "in_chans", "num_classes")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.img_size % self.patch_size:
            raise ValueError(f"img_size ({self.img_size}) must be a multiple of patch_size ({self.patch_size})")
        if self.natural and self.mask == "lit":
            raise ValueError("natural order needs a decay: mask 'decay' (LION-D) or 'selective' (LION-S), not 'lit'")

    @property
    def num_patches(self) -> int:
        return (self.img_size // self.patch_size) ** 2


def check_image_shape(config: VisionConfig, shape: tuple[int, ...] | torch.Size) -> None:
    """Raise ValueError unless `shape` is (B, in_chans, H, W) images the model accepts.

    A learnt position embedding has one row per token of an img_size x img_size image, so such a model takes that
    size only. Without one nothing in the model depends on the token count, so (like a ViT without learnt
    positions) any H and W that are multiples of patch_size work, square or not: L = (H/p)(W/p) + 1 tokens.
    """
    channels, patch = config.in_chans, config.patch_size
    if len(shape) != 4 or shape[1] != channels:
        raise ValueError(f"expected images of shape (B, {channels}, H, W), got {tuple(shape)}")
    height, width = shape[2], shape[3]
    if config.pos_embed:
        size = config.img_size
        if (height, width) != (size, size):
            raise ValueError(f"expected images of shape (B, {channels}, {size}, {size}) (the learnt position "
                             f"embedding fixes the image size), got {tuple(shape)}")
    elif height < patch or width < patch or height % patch or width % patch:
        raise ValueError(f"image height and width must be positive multiples of patch_size ({patch}), "
                         f"got {height}x{width}")


def patch_grid_for_tokens(tokens: int) -> tuple[int, int]:
    """(rows, cols) of patches with rows * cols + 1 == tokens (the class token), as square as possible, rows <= cols.

    Every count >= 2 has one (a 1 x n strip at worst), so a model without a position embedding can run at any
    token count; near-square grids are the images such a model would really see.
    """
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 2:
        raise ValueError(f"a vision model needs at least 2 tokens (one patch + the class token), got {tokens!r}")
    patches = tokens - 1
    rows = max(d for d in range(1, math.isqrt(patches) + 1) if patches % d == 0)
    return rows, patches // rows


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2, the transformer feed-forward block (names as in the public code)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class PatchEmbed(nn.Module):
    """Non-overlapping patches -> tokens via a Conv2d with kernel = stride = patch size."""

    def __init__(self, patch_size: int, in_chans: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)                       # (B, N, dim)


class VisionBlock(nn.Module):
    """Pre-norm transformer block with a vision-convention LION mixer."""

    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.dim, eps=1e-6)
        self.attn = LionAttention(config.dim, config.num_heads, config.mask, convention="vision",
                                  form=config.form, chunk_size=config.chunk_size, natural=config.natural)
        self.norm2 = nn.LayerNorm(config.dim, eps=1e-6)
        self.mlp = Mlp(config.dim, int(config.dim * config.mlp_ratio))

    def forward(self, x: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        """grid: the (rows, cols) of patches behind the tokens (used by the natural order only)."""
        x = x + self.attn(self.norm1(x), grid=grid)
        return x + self.mlp(self.norm2(x))


class LionVisionTransformer(nn.Module):
    """Images (B, in_chans, H, W) -> class logits (B, num_classes); H = W = img_size when pos_embed is on, any
    multiples of patch_size otherwise (see check_image_shape)."""

    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.dim
        self.patch_embed = PatchEmbed(config.patch_size, config.in_chans, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, config.num_patches + 1, dim)) if config.pos_embed else None
        self.blocks = nn.ModuleList(VisionBlock(config) for _ in range(config.depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, config.num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """Truncated-normal (std 0.02) for tokens, embeddings and Linears, as ViT/DeiT training does."""
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        if self.pos_embed is not None:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # eager only: under torch.export the size checks would add guards that specialise dynamic H / W
        if not torch.compiler.is_exporting():
            check_image_shape(self.config, images.shape)
        patch = self.config.patch_size
        grid = (images.shape[2] // patch, images.shape[3] // patch)
        x = self.patch_embed(images)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        if self.pos_embed is not None:
            x = x + self.pos_embed
        for block in self.blocks:
            x = block(x, grid)
        x = self.norm(x)
        pooled = x[:, 0] if self.config.cls_pooling else x.mean(dim=1)
        return self.head(pooled)


__all__ = ["VisionConfig", "check_image_shape", "patch_grid_for_tokens", "Mlp", "PatchEmbed", "VisionBlock",
           "LionVisionTransformer"]
