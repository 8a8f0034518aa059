"""The softmax-attention twin of a LION model: the same model with every LION mixer swapped for softmax attention.

Same width, depth, heads, projections and weights; only the token mixer differs (softmax(q k^T / sqrt(d)) v through
PyTorch's scaled_dot_product_attention, no feature map, no decay). It is the O(L^2) baseline a benchmark compares
LION's forms against: what the model would cost as an ordinary Transformer.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..models import LionAttention


class SoftmaxAttention(nn.Module):
    """Multi-head softmax attention reusing a LionAttention's projections (either parameter convention)."""

    def __init__(self, mixer: LionAttention) -> None:
        super().__init__()
        self.num_heads, self.head_dim, self.convention = mixer.num_heads, mixer.head_dim, mixer.convention
        if mixer.convention == "vision":
            self.qkv, self.proj = mixer.qkv, mixer.proj
        else:
            self.query, self.key, self.value, self.layer_norm = mixer.query, mixer.key, mixer.value, mixer.layer_norm

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        return t.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor | None = None,
                grid: tuple[int, int] | None = None) -> torch.Tensor:
        """grid (the patch grid, which LION's natural-order variants scan) does not matter to softmax attention:
        it sees every pair of tokens whatever their order."""
        if self.convention == "vision":
            q, k, v = self.qkv(x).unflatten(-1, (3, self.num_heads, self.head_dim)).permute(2, 0, 3, 1, 4)
        else:
            q, k, v = self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x))
        keep = None if attention_mask is None else attention_mask.bool()[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep).transpose(1, 2).flatten(2)
        if self.convention == "vision":
            return self.proj(out)
        return out if self.layer_norm is None else self.layer_norm(out)


def softmax_twin(model: nn.Module) -> nn.Module:
    """A copy of `model` with each LionAttention replaced by SoftmaxAttention (the caller's model is untouched)."""
    twin = copy.deepcopy(model)
    for parent in list(twin.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LionAttention):
                setattr(parent, name, SoftmaxAttention(child))
    return twin.eval()


__all__ = ["SoftmaxAttention", "softmax_twin"]
