"""An independent float64 reference: LION attention written straight from the equations.

Deliberately unlike the package's code: the mask is a product of the lambdas between i and j, formed one entry at
a time from float64 prefix sums, so a shared bug in `lion_export.forms.decay` cannot hide here.
"""
from __future__ import annotations

import torch


def reference_attention(q, k, v, log_decay=None, normalize=True, eps=1e-6):
    """float64 Y = diag(C)^-1 (Q K^T ⊙ M) V for (B, H, L, d) inputs; log_decay None, (H,) or (B, H, L)."""
    q, k, v = (x.detach().to(torch.float64) for x in (q, k, v))
    batch, heads, length, _ = q.shape
    if log_decay is None:
        a = torch.zeros(batch, heads, length, dtype=torch.float64)
    else:
        a = log_decay.detach().to(torch.float64)
        a = a.view(1, heads, 1).expand(batch, heads, length) if a.dim() == 1 else a
    incl = a.cumsum(-1)          # Q_i = a_0 + ... + a_i
    excl = incl - a              # P_i = a_0 + ... + a_{i-1}
    i = torch.arange(length).view(-1, 1)
    j = torch.arange(length).view(1, -1)
    log_m = torch.where(j < i, excl.unsqueeze(-1) - excl.unsqueeze(-2),      # P_i - P_j
                        incl.unsqueeze(-2) - incl.unsqueeze(-1))             # Q_j - Q_i
    log_m = torch.where(i == j, torch.zeros_like(log_m), log_m)
    scores = (q @ k.transpose(-1, -2)) * log_m.exp()
    out = scores @ v
    if normalize:
        out = out / (scores.sum(-1, keepdim=True) + eps)
    return out
