"""Chunkwise-parallel form: exact LION attention in O(L c dk + L dk dv) work for chunk size c.

Each output is an intra-chunk part (a c x c masked block, the parallel form restricted to the chunk) plus a
forward and a backward inter-chunk part (LION-REFERENCE.md, "Chunkwise-parallel form"). The inter-chunk states
are built for all chunks at once: per-chunk summaries U_m (dk x dv) are mixed by an (L/c) x (L/c) decay matrix.
That keeps the whole form loop-free with a data-dependent number of chunks, which is what lets one exported
graph serve every sequence length (ONNX and TensorRT have no cheap loops); the chunk-level mix costs
O((L/c)^2 dk dv), small next to the intra-chunk work for c >= 32 at the lengths encoders see.

Sequences are padded at the end to a multiple of c with k = v = q = 0 and log decay 0: padding sits after every
real token, contributes nothing, and is cut off, so any L works, including L < c.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .decay import cumsum_exclusive, cumsum_inclusive, pairwise_log_decay


def _pad_to_chunks(x: torch.Tensor, chunk: int, pad: int) -> torch.Tensor:
    """(B, H, L, ...) -> (B, H, N, c, ...) with zeros appended along L."""
    if x.dim() == 3:
        x = F.pad(x, (0, pad))
    else:
        x = F.pad(x, (0, 0, 0, pad))
    return x.reshape(x.shape[0], x.shape[1], -1, chunk, *x.shape[3:])


def chunked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, a: torch.Tensor,
                      normalize: bool, eps: float, chunk_size: int) -> torch.Tensor:
    """The chunkwise form; inputs (B, H, L, d) and log decays a (B, H, L), already in the compute dtype."""
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}")
    batch, heads, length, dk = q.shape
    dv = v.shape[-1]
    pad = (-length) % chunk_size
    qc, kc, vc = (_pad_to_chunks(x, chunk_size, pad) for x in (q, k, v))
    ac = _pad_to_chunks(a, chunk_size, pad)                       # (B, H, N, c)

    # intra-chunk: the parallel form on each c x c block
    scores = (qc @ kc.transpose(-1, -2)) * pairwise_log_decay(ac).exp()
    num = scores @ vc
    den = scores.sum(-1)

    # chunk summaries. Forward: decay from token j to the start of the next chunk, sum_{t=j}^{e} a_t.
    # Backward: decay from the end of the previous chunk to token j, sum_{t=s}^{j} a_t.
    k_fwd = kc * cumsum_inclusive(ac, reverse=True).exp().unsqueeze(-1)
    k_bwd = kc * cumsum_inclusive(ac).exp().unsqueeze(-1)
    totals = ac.sum(-1)                                           # (B, H, N)
    between = pairwise_log_decay(totals, count_key=False)         # (B, H, N, N): decay strictly between chunks
    n_chunks = totals.shape[-1]
    idx = torch.arange(n_chunks, device=q.device)
    zero = torch.zeros((), dtype=between.dtype, device=q.device)
    mix_fwd = torch.where(idx[None, :] < idx[:, None], between.exp(), zero)  # chunk m < n feeds chunk n
    mix_bwd = torch.where(idx[None, :] > idx[:, None], between.exp(), zero)  # chunk m > n feeds chunk n

    # states entering each chunk: H_n = sum_m mix[n, m] U_m, with U_m = sum_j w_j k_j v_j^T (flattened dk*dv)
    u_fwd = (k_fwd.transpose(-1, -2) @ vc).reshape(batch, heads, n_chunks, dk * dv)
    u_bwd = (k_bwd.transpose(-1, -2) @ vc).reshape(batch, heads, n_chunks, dk * dv)
    h_fwd = (mix_fwd @ u_fwd).reshape(batch, heads, n_chunks, dk, dv)
    h_bwd = (mix_bwd @ u_bwd).reshape(batch, heads, n_chunks, dk, dv)

    # queries read the states, decayed from the chunk start (forward) or end (backward) to themselves
    q_fwd = qc * cumsum_exclusive(ac).exp().unsqueeze(-1)
    q_bwd = qc * cumsum_exclusive(ac, reverse=True).exp().unsqueeze(-1)
    num = num + q_fwd @ h_fwd + q_bwd @ h_bwd
    if normalize:
        z_fwd = mix_fwd @ k_fwd.sum(-2)                           # (B, H, N, dk)
        z_bwd = mix_bwd @ k_bwd.sum(-2)
        den = den + (q_fwd @ z_fwd.unsqueeze(-1)).squeeze(-1) + (q_bwd @ z_bwd.unsqueeze(-1)).squeeze(-1)
        num = num / (den.unsqueeze(-1) + eps)
    return num.reshape(batch, heads, -1, dv)[:, :, :length]
