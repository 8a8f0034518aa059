"""The LION text encoder: a BERT-style encoder whose token mixer is LION in the public MLM convention.

Layout (post-norm, as BERT and the public LION MLM model): token [+ position] [+ token type] embeddings -> LayerNorm ->
N blocks [x = norm1(x + attn_proj(attn(x))); x = norm2(x + mlp(x))] -> optional MLM head (dense, GELU,
LayerNorm, decoder to the vocabulary). The mixer's own parameter names (query, key, value, ai, Wa_i,
layer_norm) are the public ones; the rest of the encoder is ours.

Padding: `attention_mask` (B, L), 1 = token, 0 = padding. Padded keys contribute nothing (their k and v are
zeroed, the public semantics), identically in every form, so with right padding the outputs on real tokens equal
those of the unpadded sequence. The forward pass has no branches on tensor values (ONNX-exportable with dynamic
batch and sequence axes).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .attention import LionAttention
from .config import ModelConfig
from .vision import Mlp

_LAYER_NORM_EPS = 1e-12  # BERT's


@dataclass(frozen=True)
class TextConfig(ModelConfig):
    """A LION text encoder. Defaults: encoder-tiny with BERT's uncased WordPiece vocabulary size."""

    kind = "text"

    dim: int = 128
    depth: int = 2
    num_heads: int = 2
    vocab_size: int = 30522
    max_len: int = 512
    mlm_head: bool = True
    layer_norm_after: bool = False
    pos_embed: bool = True
    type_vocab_size: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.type_vocab_size < 0:
            raise ValueError(f"config field 'type_vocab_size' must be >= 0, got {self.type_vocab_size}")

    def _positive_fields(self) -> tuple[str, ...]:
        return (*super()._positive_fields(), "vocab_size", "max_len")


class TextBlock(nn.Module):
    """Post-norm encoder block with an MLM-convention LION mixer."""

    def __init__(self, config: TextConfig) -> None:
        super().__init__()
        self.attn = LionAttention(config.dim, config.num_heads, config.mask, convention="mlm",
                                  form=config.form, chunk_size=config.chunk_size,
                                  layer_norm_after=config.layer_norm_after)
        self.attn_proj = nn.Linear(config.dim, config.dim)
        self.norm1 = nn.LayerNorm(config.dim, eps=_LAYER_NORM_EPS)
        self.mlp = Mlp(config.dim, int(config.dim * config.mlp_ratio))
        self.norm2 = nn.LayerNorm(config.dim, eps=_LAYER_NORM_EPS)

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        x = self.norm1(x + self.attn_proj(self.attn(x, attention_mask)))
        return self.norm2(x + self.mlp(x))


class MlmHead(nn.Module):
    """Hidden states -> vocabulary logits (dense, GELU, LayerNorm, decoder), as BERT's prediction head."""

    def __init__(self, dim: int, vocab_size: int) -> None:
        super().__init__()
        self.dense = nn.Linear(dim, dim)
        self.act = nn.GELU()
        self.norm = nn.LayerNorm(dim, eps=_LAYER_NORM_EPS)
        self.decoder = nn.Linear(dim, vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.norm(self.act(self.dense(x))))


class LionTextEncoder(nn.Module):
    """input_ids (B, L) [+ attention_mask (B, L)] -> logits (B, L, vocab_size) with the MLM head, else hidden
    states (B, L, dim)."""

    def __init__(self, config: TextConfig) -> None:
        super().__init__()
        self.config = config
        self.token_embed = nn.Embedding(config.vocab_size, config.dim)
        self.pos_embed = nn.Embedding(config.max_len, config.dim) if config.pos_embed else None
        self.type_embed = nn.Embedding(config.type_vocab_size, config.dim) if config.type_vocab_size else None
        self.embed_norm = nn.LayerNorm(config.dim, eps=_LAYER_NORM_EPS)
        self.blocks = nn.ModuleList(TextBlock(config) for _ in range(config.depth))
        self.head = MlmHead(config.dim, config.vocab_size) if config.mlm_head else None
        self._init_weights()

    def _init_weights(self) -> None:
        """Normal(0, 0.02) weights and zero biases, as BERT initialises."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """token_type_ids (B, L): BERT segments (models with type_vocab_size > 0; default all segment 0)."""
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (B, L), got shape {tuple(input_ids.shape)}")
        if attention_mask is not None and attention_mask.dim() != 2:
            raise ValueError(f"attention_mask must be (B, L) like input_ids, got shape {tuple(attention_mask.shape)}")
        # eager only: under torch.export this comparison would pin the symbolic sequence length to <= max_len
        if not torch.compiler.is_exporting() and input_ids.shape[1] > self.config.max_len:
            raise ValueError(f"sequence of {input_ids.shape[1]} tokens is longer than max_len={self.config.max_len}")
        x = self.token_embed(input_ids)
        if self.pos_embed is not None:
            x = x + self.pos_embed(torch.arange(input_ids.shape[1], device=input_ids.device))
        if self.type_embed is not None:
            x = x + (self.type_embed.weight[0] if token_type_ids is None else self.type_embed(token_type_ids))
        x = self.embed_norm(x)
        for block in self.blocks:
            x = block(x, attention_mask)
        return x if self.head is None else self.head(x)


__all__ = ["TextConfig", "TextBlock", "MlmHead", "LionTextEncoder"]
