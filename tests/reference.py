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


def reference_natural_attention(q, k, v, log_decay_1, log_decay_2, rows, cols, eps=1e-6):
    """float64 LION-D♮ / LION-S♮ straight from the definition: the two snake walks written out as lists, the LION
    mask built in each walk's order one entry at a time, mapped back to natural order, averaged, then normalised.

    q, k, v (B, H, L, d) in natural order (class token, then patches row-major), L = rows * cols + 1; each log
    decay None, (H,) or (B, H, L) in natural order.
    """
    q, k, v = (x.detach().to(torch.float64) for x in (q, k, v))
    batch, heads, length, _ = q.shape
    assert length == rows * cols + 1
    walk_rows, walk_cols = [0], [0]
    for r in range(rows):
        walk_rows += [1 + r * cols + c for c in (range(cols) if r % 2 == 0 else reversed(range(cols)))]
    for c in range(cols):
        walk_cols += [1 + r * cols + c for r in (range(rows) if c % 2 == 0 else reversed(range(rows)))]
    mask = torch.zeros(batch, heads, length, length, dtype=torch.float64)
    for walk, log_decay in ((walk_rows, log_decay_1), (walk_cols, log_decay_2)):
        if log_decay is None:
            a = torch.zeros(batch, heads, length, dtype=torch.float64)
        else:
            a = log_decay.detach().to(torch.float64)
            a = a.view(1, heads, 1).expand(batch, heads, length) if a.dim() == 1 else a
        lam = a.exp()
        position = {token: p for p, token in enumerate(walk)}
        for t in range(length):
            for u in range(length):
                i, j = position[t], position[u]          # query t, key u, at positions i, j of this walk
                between = walk[j:i] if j < i else walk[i + 1:j + 1]
                mask[:, :, t, u] += lam[:, :, between].prod(-1)
    mask = mask / 2
    scores = (q @ k.transpose(-1, -2)) * mask
    return (scores @ v) / (scores.sum(-1, keepdim=True) + eps)
