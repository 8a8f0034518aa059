"""Recurrent form: the bidirectional RNN of LION-REFERENCE.md, O(dk dv) state per head.

This is the form a device runs token by token (and what the `lion.SelectiveScan` node and the fused Triton scan
compute). It is vectorised over batch and heads; the loop over tokens is inherent to the form. Only the per-token
numerators and normalisers are kept, O(L dv) memory, never a per-token copy of the state.
"""
from __future__ import annotations

import torch


def _sweep(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, decay_in: torch.Tensor,
           order: range) -> tuple[torch.Tensor, torch.Tensor]:
    """One direction: S_i = decay_in_i * S_prev + k_i v_i^T, read by q_i; returns q_i^T S_i and q_i^T z_i.

    Without autograd the per-token results go straight into preallocated (L, dv) buffers: thousands of small
    tensors kept alive between the state's temporaries fragment the CPU heap (measured: ~50x the O(L dv) the
    outputs need). With autograd, slice assignment would make backward O(L^2), so results are stacked instead.
    """
    batch, heads, length, dk = q.shape
    state = q.new_zeros(batch, heads, dk, v.shape[-1])
    norm = q.new_zeros(batch, heads, dk)
    tracking = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v, decay_in))
    if tracking:
        nums: list[torch.Tensor] = [q.new_empty(0)] * length
        dens: list[torch.Tensor] = [q.new_empty(0)] * length
    else:
        num_buf = q.new_empty(batch, heads, length, v.shape[-1])
        den_buf = q.new_empty(batch, heads, length)
    for i in order:
        lam = decay_in[:, :, i]
        state = lam[..., None, None] * state + k[:, :, i, :, None] * v[:, :, i, None, :]
        norm = lam[..., None] * norm + k[:, :, i]
        num = (q[:, :, i, None, :] @ state).squeeze(-2)
        den = (q[:, :, i] * norm).sum(-1)
        if tracking:
            nums[i], dens[i] = num, den
        else:
            num_buf[:, :, i], den_buf[:, :, i] = num, den
    if tracking:
        return torch.stack(nums, 2), torch.stack(dens, 2)
    return num_buf, den_buf


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
    num = num_f + num_b - qk.unsqueeze(-1) * v
    if not normalize:
        return num
    den = den_f + den_b - qk
    return num / (den.unsqueeze(-1) + eps)
