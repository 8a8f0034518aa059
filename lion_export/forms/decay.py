"""The LION mask convention, in log space, in one place.

Every form (parallel, chunked, recurrent) and the exported graphs read the decay structure from here, so the
convention of docs/maths.md ("The mask convention": count the key j, not the query i) exists exactly once:

    j < i :  log M_ij = a_j + ... + a_{i-1}
    j > i :  log M_ij = a_{i+1} + ... + a_j
    j = i :  log M_ij = 0

Sums are always formed directly over the tokens between i and j (never as a difference of two long prefix sums),
so the exponent of a weight near 1 is exact to fp32 rounding however long the sequence, and every exponent is
<= 0: no exp() here can overflow, in fp32 or fp16.
"""
from __future__ import annotations

import torch


def cumsum_inclusive(a: torch.Tensor, reverse: bool = False) -> torch.Tensor:
    """sum_{t<=i} a_t (forward) or sum_{t>=i} a_t (reverse) along the last axis."""
    if reverse:
        return a.flip(-1).cumsum(-1).flip(-1)
    return a.cumsum(-1)


def cumsum_exclusive(a: torch.Tensor, reverse: bool = False) -> torch.Tensor:
    """sum_{t<i} a_t (forward) or sum_{t>i} a_t (reverse): the inclusive sum of the shifted sequence.

    Shifting instead of subtracting a_i keeps the sum exact when a_i is large and the rest is small.
    """
    zero = torch.zeros_like(a[..., :1])
    if reverse:
        return cumsum_inclusive(torch.cat([a[..., 1:], zero], dim=-1), reverse=True)
    return torch.cat([zero, a[..., :-1]], dim=-1).cumsum(-1)


def running_sums(x: torch.Tensor, first: int) -> torch.Tensor:
    """(..., n) -> (..., n, n) with entry (r, s) = x_{r+first} + ... + x_s (0 where s < r + first).

    One cumsum along the last axis of a masked copy: each entry is a direct sum over its own span, started at the
    end nearest r. Every mask below is built from this, so all their CumSums run on one axis (TensorRT has given
    wrong results for several CumSums on different axes in one model) and none needs a flip.
    """
    n = x.shape[-1]
    idx = torch.arange(n, device=x.device)
    keep = idx[None, :] >= idx[:, None] + first
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    return torch.where(keep, x.unsqueeze(-2), zero).cumsum(-1)


def shift_right(x: torch.Tensor) -> torch.Tensor:
    """x_{s-1} at position s (0 at s = 0) along the last axis."""
    # pad, then drop the last: no intermediate of size L - 1, which torch.export would guard against being 1
    return torch.nn.functional.pad(x, (1, 0))[..., :-1]


def pairwise_log_decay(a: torch.Tensor) -> torch.Tensor:
    """(..., L) log decays -> (..., L, L) matrix of summed log decays between every query i and key j (the mask).

    upper[i, j] = a_{i+1} + ... + a_j and lower^T[j, i] = a_j + ... + a_{i-1} are both strictly upper
    triangular, so the mask is their sum with the diagonal 0, each entry a direct sum of its own span.
    """
    return running_sums(a, 1) + running_sums(shift_right(a), 1).transpose(-1, -2)


def running_products(x: torch.Tensor, first: int) -> torch.Tensor:
    """running_sums in product space: entry (r, s) = x_{r+first} * ... * x_s (1 where s < r + first)."""
    n = x.shape[-1]
    idx = torch.arange(n, device=x.device)
    keep = idx[None, :] >= idx[:, None] + first
    return torch.where(keep, x.unsqueeze(-2), torch.ones((), dtype=x.dtype, device=x.device)).cumprod(-1)


def pairwise_decay(a: torch.Tensor) -> torch.Tensor:
    """exp(pairwise_log_decay(a)) for eager runs, as products of the per-token decays exp(a_t).

    Each entry is a direct product over its own span (the same rule as the direct sums: no quotient of long
    prefix products), computed in one pass fewer than sums followed by an exp, and without the exp over the
    (L, L) matrix, its most expensive pass. ONNX has no CumProd, so graphs use the log-space form."""
    decay = a.exp()
    upper = running_products(decay, 1)
    return upper.mul_(running_products(shift_right(decay), 1).transpose(-1, -2))


def log_decay_between(t: torch.Tensor) -> torch.Tensor:
    """(..., n) per-block log decay totals -> (..., n, n) sums strictly between blocks r < s (upper triangle).

    Entry (r, s) is t_{r+1} + ... + t_{s-1}: the decay from the end of block r to the start of block s (and, by
    symmetry, from the start of s back to the end of r). Zero on and below the diagonal; callers mask it.
    """
    return running_sums(shift_right(t), 2)


def log_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """log(sigmoid(x)), finite and accurate for every finite x, in eager PyTorch and in every exported graph.

    Written as min(x, 0) - softplus(-|x|) (the same function: log sigmoid(x) = -softplus(-x), and softplus(y) =
    max(y, 0) + softplus(-|y|)). torch.onnx exports F.logsigmoid as Log(Sigmoid(x)), and graph runtimes' Sigmoid
    is not accurate in the tail: onnxruntime's returns 0 below x ~ -18 (so the log decay is -inf, the recurrent
    form's products inf - inf) and is already 2x off at x = -17. Here softplus only ever sees arguments <= 0, so no
    runtime's exp can overflow and the result is within [-log 2, 0] of min(x, 0). torch.minimum splits the
    gradient at the tie x = 0, so the derivative there is sigmoid(-0) = 1/2, as it should be.
    """
    return torch.minimum(x, torch.zeros_like(x)) - torch.nn.functional.softplus(-x.abs())


def expand_log_decay(log_decay: torch.Tensor | None, batch: int, heads: int, length: int,
                     like: torch.Tensor) -> torch.Tensor:
    """None (LION-LIT), (H,) (LION-D) or (B, H, L) (LION-S) -> (B, H, L) float32 log decays.

    Always fp32 (or fp64 for fp64 inputs): prefix sums of decays are where fp16 loses a model.
    """
    dtype = torch.float64 if like.dtype == torch.float64 else torch.float32
    if log_decay is None:
        return torch.zeros(batch, heads, length, dtype=dtype, device=like.device)
    log_decay = log_decay.to(dtype)
    if log_decay.dim() == 1:
        if log_decay.shape[0] != heads:
            raise ValueError(f"log_decay of shape (H,) must have H={heads} entries, got {tuple(log_decay.shape)}")
        return log_decay.view(1, heads, 1).expand(batch, heads, length)
    if log_decay.dim() == 3 and log_decay.shape == (batch, heads, length):
        return log_decay
    raise ValueError(f"log_decay must be None, (H,) or (B, H, L) = ({batch}, {heads}, {length}); "
                     f"got {tuple(log_decay.shape)}")
