"""Parallel ("attention") form: the full L x L masked attention of docs/maths.md.

The baseline every other form is checked against; O(L^2) time and memory, so it is for verification and short
sequences, not for deployment at long L.
"""
from __future__ import annotations

import torch

from .decay import pairwise_log_decay


def parallel_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, a: torch.Tensor,
                       normalize: bool, eps: float) -> torch.Tensor:
    """Y = diag(C)^-1 (Q K^T ⊙ M) V with M = exp(pairwise_log_decay(a)); inputs already in the compute dtype."""
    scores = (q @ k.transpose(-1, -2)) * pairwise_log_decay(a).exp()
    out = scores @ v
    if normalize:
        out = out / (scores.sum(-1, keepdim=True) + eps)
    return out
