"""Recurrent form: the bidirectional RNN of docs/maths.md, O(dk dv) state per head.

This is the form a device runs as a scan (and what the `lion.SelectiveScan` node and the fused Triton scan
compute). In eager PyTorch a Python step per token costs ~10 tiny ops per token, each paying interpreter and
thread hand-off overhead, so the recurrence steps BLOCK tokens at a time: per block, the forward state
S <- exp(sum of the block's log decays) S + sum_j w_j k_j [v_j, 1]^T (the normaliser z rides along as the last
column), and the block's queries read S plus the block's own c x c masked part (the chunked form's
`masked_block`). Still a genuine recurrence, one (dk, dv + 1) state per head and direction carried from block to
block, L / BLOCK steps per sweep; every decay exponent a direct sum over the tokens it spans. Only the outputs
are kept, O(L dv) memory, never a per-block copy of the state.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from .chunked import decay_mask, in_place_ok, masked_block, with_ones
from .decay import cumsum_exclusive, cumsum_inclusive

BLOCK = 64      # tokens per recurrence step (the last block may be shorter)


@contextmanager
def one_intra_op_thread() -> Iterator[None]:
    """Run the block steps on one thread. Each step's ops are small (a (dk, dv) state, a 64 x 64 block): a
    thread hand-off per op costs more than it saves, and on a loaded machine (more runnable threads than cores)
    a parallel region can wait a whole scheduler slice for its second thread (measured: 2 threads 15-50x slower
    than 1). The setting is process-wide, so other Python threads see it during the call; restored after."""
    threads = torch.get_num_threads()
    if threads > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if threads > 1:
            torch.set_num_threads(threads)


def _sweep(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, a: torch.Tensor, normalize: bool, reverse: bool,
           out: torch.Tensor | None, parts: list[torch.Tensor]) -> None:
    """One direction, block by block. The forward sweep writes each block's output (its intra-block part plus
    the forward state's read-out), the backward sweep adds its read-out: into `out` without autograd, else into
    `parts` (one tensor per block; slice assignment under autograd would make backward O(L^2))."""
    batch, heads, length, dk = q.shape
    width = v.shape[-1] + 1 if normalize else v.shape[-1]
    starts = range(0, length, BLOCK)
    state = q.new_zeros(batch, heads, dk, width)
    for n in reversed(range(len(starts))) if reverse else range(len(starts)):
        s, e = starts[n], min(starts[n] + BLOCK, length)
        qb, kb, vb, ab = q[:, :, s:e], k[:, :, s:e], v[:, :, s:e], a[:, :, s:e]
        # queries read the state decayed from the block edge to themselves (the edge token not counted)
        read = (qb * cumsum_exclusive(ab, reverse=reverse).exp().unsqueeze(-1)) @ state
        vb = with_ones(vb) if normalize else vb
        if not reverse:
            read = read + masked_block(qb, kb, decay_mask(ab, out is not None), vb, out is not None)
        if out is None:
            parts[n:n + 1] = [parts[n] + read] if reverse else [read]
        elif reverse:
            out[:, :, s:e].add_(read)
        else:
            out[:, :, s:e].copy_(read)
        # keys enter the state decayed from themselves (counted) to the far edge of the block
        key_w = cumsum_inclusive(ab, reverse=not reverse).exp().unsqueeze(-1)
        state = ab.sum(-1).exp()[..., None, None] * state + kb.transpose(-1, -2) @ (vb * key_w)


def recurrent_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, a: torch.Tensor,
                        normalize: bool, eps: float) -> torch.Tensor:
    """y_i = q_i^T (Sf_i + Sb_i - k_i v_i^T) / q_i^T (zf_i + zb_i - k_i); inputs in the compute dtype."""
    batch, heads, length, _ = q.shape
    dv = v.shape[-1]
    lean = in_place_ok(q, k, v, a)
    out = q.new_empty(batch, heads, length, dv + 1 if normalize else dv) if lean else None
    parts: list[torch.Tensor] = []
    with one_intra_op_thread():     # the whole call, the last division too: no thread hand-off anywhere
        for reverse in (False, True):
            _sweep(q, k, v, a, normalize, reverse, out, parts)
        if out is None:
            out = torch.cat(parts, dim=2)
        if not normalize:
            return out
        if lean:    # divide in place and return a view: no second output-sized buffer
            return out[..., :dv].div_(out[..., dv:].add_(eps))
        return out[..., :dv] / (out[..., dv:] + eps)
