"""The LION mask convention, in log space, in one place.

Every form (parallel, chunked, recurrent) and the exported graphs read the decay structure from here, so the
convention of ../shared/LION-REFERENCE.md ("count the key j, not the query i") exists exactly once:

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


def pairwise_log_decay(a: torch.Tensor, count_key: bool = True) -> torch.Tensor:
    """(..., L) log decays -> (..., L, L) matrix of summed log decays between every query i and key j.

    count_key=True is the token mask above (LION-REFERENCE.md, "Mask"). count_key=False sums strictly between
    i and j; the chunked form uses it over chunk totals (the decay from the end of chunk m to the start of
    chunk n). The diagonal is 0 in both cases.
    """
    length = a.shape[-1]
    idx = torch.arange(length, device=a.device)
    row, col = idx[:, None], idx[None, :]
    rows = a.unsqueeze(-2).expand(*a.shape[:-1], length, length)
    zero = torch.zeros((), dtype=a.dtype, device=a.device)
    # lower triangle: for row i, sum a_t over t in [j, i-1] -> reverse cumsum over t restricted to t < i
    lower = cumsum_inclusive(torch.where(col < row, rows, zero), reverse=True)
    # upper triangle: sum a_t over t in [i+1, j] -> forward cumsum over t restricted to t > i
    upper = cumsum_inclusive(torch.where(col > row, rows, zero))
    if not count_key:
        # drop the key's own term by shifting one column towards the query instead of subtracting a_j
        pad = torch.zeros_like(lower[..., :1])
        lower = torch.cat([lower[..., 1:], pad], dim=-1)
        upper = torch.cat([pad, upper[..., :-1]], dim=-1)
    return torch.where(col < row, lower, torch.where(col > row, upper, zero))


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
