"""Recurrent form: the bidirectional RNN of LION-REFERENCE.md, O(dk dv) state per head.

This is the form a device runs token by token (and what the `lion.SelectiveScan` node and the fused Triton scan
compute). It is vectorised over batch and heads; the loop over tokens is inherent to the form. Only the per-token
numerators and normalisers are kept, O(L dv) memory, never a per-token copy of the state.
"""
from __future__ import annotations

import torch


def _sweep(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, decay_in: torch.Tensor,
           order: range) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """One direction: S_i = decay_in_i * S_prev + k_i v_i^T, read by q_i; returns q_i^T S_i and q_i^T z_i."""
    batch, heads, _, dk = q.shape
    state = q.new_zeros(batch, heads, dk, v.shape[-1])
    norm = q.new_zeros(batch, heads, dk)
    nums: list[torch.Tensor] = [None] * len(order)  # type: ignore[list-item]
    dens: list[torch.Tensor] = [None] * len(order)  # type: ignore[list-item]
    for i in order:
        lam = decay_in[:, :, i]
        state = lam[..., None, None] * state + k[:, :, i, :, None] * v[:, :, i, None, :]
        norm = lam[..., None] * norm + k[:, :, i]
        nums[i] = (q[:, :, i, None, :] @ state).squeeze(-2)
        dens[i] = (q[:, :, i] * norm).sum(-1)
    return nums, dens


def recurrent_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, a: torch.Tensor,
                        normalize: bool, eps: float) -> torch.Tensor:
    """y_i = q_i^T (Sf_i + Sb_i - k_i v_i^T) / q_i^T (zf_i + zb_i - k_i); inputs in the compute dtype."""
    length = q.shape[2]
    lam = a.exp()
    one = torch.ones_like(lam[..., :1])
    # forward state i is decayed by lambda_{i-1}, backward state i by lambda_{i+1}
    into_fwd = torch.cat([one, lam[..., :-1]], dim=-1)
    into_bwd = torch.cat([lam[..., 1:], one], dim=-1)
    num_f, den_f = _sweep(q, k, v, into_fwd, range(length))
    num_b, den_b = _sweep(q, k, v, into_bwd, range(length - 1, -1, -1))
    qk = (q * k).sum(-1)                                           # the diagonal, counted by both sweeps
    num = torch.stack(num_f, 2) + torch.stack(num_b, 2) - qk.unsqueeze(-1) * v
    if not normalize:
        return num
    den = torch.stack(den_f, 2) + torch.stack(den_b, 2) - qk
    return num / (den.unsqueeze(-1) + eps)
