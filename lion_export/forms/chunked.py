"""Chunkwise-parallel form: exact LION attention in O(L c (dk + dv) + L dk dv) work for chunk size c.

Each output is an intra-chunk part (a c x c masked block, the parallel form restricted to the chunk) plus a
forward and a backward inter-chunk part (docs/maths.md, "Form 3"). Per chunk a GEMM gives the summaries
S = (K w)^T [V, 1] (the normaliser rides along as one more value column); the states entering every chunk follow
from them, and a GEMM per chunk reads them back: q w' H.

The states are carried two ways, the same sum:
- eager without autograd (`_in_runs`): one direction at a time, a recurrence over the chunks in place over the
  summaries (`scan_states_`), in pieces of one fixed workspace (`state_pieces`), with the chunk work in
  cache-sized runs of chunks and every result written in place: a call's fresh memory is its output;
- graph export and autograd (`_in_one_run`): both directions in one GEMM each way, and loop-free
  (`carried_states`): a hierarchy of chunk groups (a small dense decay mix inside each group of GROUP, between
  groups the same construction one level up, LEVELS levels), O(L) for any practical L, so one exported graph
  serves every sequence length with a data-dependent number of chunks (ONNX and TensorRT have no cheap loops):
  only MatMul, CumSum (all on the last axis), Exp, Where, Pad and reshapes.

Every exponent is a direct sum over the span it decays across (lion_export/forms/decay.py), or in eager mode
the matching direct product, so a weight near 1 stays exact however long the sequence. LION-LIT (no decay,
mask 1) needs no chunks at all: Y = Q (K^T [V, 1]).

Sequences are padded at the end to a multiple of c with k = v = q = 0 and log decay 0: padding sits after every
real token, contributes nothing, and is cut off, so any L works, including L < c.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F

from .decay import cumsum_exclusive, cumsum_inclusive, log_decay_between, pairwise_decay, pairwise_log_decay

GROUP = 8       # chunks (then groups) per group: the dense mix inside a group is GROUP x GROUP
LEVELS = 3      # levels of the hierarchy; the top one mixes all its groups densely
SLAB_ELEMENTS = 2 ** 18     # eager: c x c temporaries per run of chunks (1 MiB in fp32; see chunk_slabs)
STATE_ELEMENTS = 2 ** 22    # eager: chunk states held at once (16 MiB in fp32; see state_pieces)


def pad_length(x: torch.Tensor, pad: int | torch.SymInt, axis: int) -> torch.Tensor:
    """Zeros appended along `axis` (from the end, -1 or -2). A concrete pad of 0 returns x itself: F.pad would
    copy, and at long L that copy is as large as the output. A symbolic pad (graph export) always pads."""
    if isinstance(pad, int) and pad == 0:
        return x
    return F.pad(x, (0, pad) if axis == -1 else (0, 0, 0, pad))


def in_place_ok(*tensors: torch.Tensor) -> bool:
    """Whether intermediates may be updated in place (for peak memory): not while autograd records the ops, and
    not in a graph export, where an in-place update of a slice becomes Transpose + ScatterND + Transpose and
    the runtime plans the memory anyway."""
    if torch.compiler.is_exporting():
        return False
    return not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))


def bmm(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """x @ y for equal leading dims, folded into one batch first: matmul on >3-d operands copies a transposed
    operand to fold its batch dims (at long L a copy as large as the output); bmm reads it strided."""
    return torch.bmm(x.flatten(0, -3), y.flatten(0, -3)).unflatten(0, x.shape[:-2])


def with_ones(v: torch.Tensor) -> torch.Tensor:
    """[v, 1]: one more value column whose products are the normalisers, so they ride along in every GEMM."""
    return F.pad(v, (0, 1), value=1.0)


def chunk_slabs(start: int, stop: int, per_chunk: int) -> list[slice]:
    """Eager: runs of chunks whose c x c temporaries (per_chunk elements each) stay cache-sized, so the mask's
    elementwise passes hit cache rather than memory."""
    step = max(1, SLAB_ELEMENTS // per_chunk)
    return [slice(first, min(first + step, stop)) for first in range(start, stop, step)]


def state_pieces(rows: int, per_row: int, per_state: int, reverse: bool) -> list[slice]:
    """Eager: the chunks (rows x per_row, row-major) in pieces whose states (per_state elements each) fit in
    STATE_ELEMENTS, in scan order: whole rows per piece where a row fits, else each row in consecutive segments.

    One workspace of that size serves every piece, so a call's fresh memory is its output alone: the allocator
    reuses a buffer of this size between calls, where a buffer as large as all the states (about the output's
    size) is mapped fresh by the kernel each call, and those page faults measured a quarter of the run at
    L = 65536."""
    capacity = max(1, STATE_ELEMENTS // per_state)
    if per_row <= capacity:
        step = capacity // per_row
        pieces = [slice(r * per_row, min(r + step, rows) * per_row) for r in range(0, rows, step)]
    else:
        pieces = [slice(r * per_row + n, r * per_row + min(n + capacity, per_row))
                  for r in range(rows) for n in range(0, per_row, capacity)]
    return pieces[::-1] if reverse else pieces


def decay_mask(a: torch.Tensor, lean: bool) -> torch.Tensor:
    """(..., c) log decays -> the (..., c, c) mask M: eager as running products, in a graph (no CumProd in
    ONNX) or under autograd as exp of the direct sums."""
    return pairwise_decay(a) if lean else pairwise_log_decay(a).exp()


def masked_block(qc: torch.Tensor, kc: torch.Tensor, mask: torch.Tensor, values: torch.Tensor,
                 lean: bool) -> torch.Tensor:
    """The parallel form on each c x c block: (Q K^T ⊙ M) values; values is [v, 1] where normalisers are wanted
    (their products are the row sums)."""
    scores = bmm(qc, kc.transpose(-1, -2))
    scores = scores.mul_(mask) if lean else scores * mask
    return bmm(scores, values)


def weighted_pair(x: torch.Tensor, first: torch.Tensor, second: torch.Tensor, dim: int) -> torch.Tensor:
    """[x * first, x * second] joined along dim (-1 or -2): the two directions' weightings side by side, so both
    share one GEMM with an inner (queries) or outer (keys) size of 2 d. One broadcast Mul, no Concat (measured
    faster in onnxruntime)."""
    weights = torch.stack([first, second], dim=dim - 1)
    return (x.unsqueeze(dim - 1) * weights).flatten(dim - 1, dim)


def hierarchy_levels(n_items: int | torch.SymInt) -> int:
    """LEVELS for a graph export (one graph for every L); eager, the fewest levels whose top is <= GROUP items."""
    if torch.compiler.is_exporting() or not isinstance(n_items, int):
        return LEVELS
    levels = 1
    while levels < LEVELS and n_items > GROUP ** levels:
        levels += 1
    return levels


def carried_states(u: torch.Tensor, totals: torch.Tensor, reverse: bool, levels: int) -> torch.Tensor:
    """States entering each item from the left (forward) or the right (reverse), for (..., n, D) summaries.

    u_m is item m's contribution already decayed to its own boundary (its end going forward, its start going
    backward); totals (..., n) its summed log decay. Forward: H_n = sum_{m<n} exp(totals strictly between) u_m;
    reverse: the mirror image. One level is a dense n x n mix; more levels group GROUP items, mix within the
    group densely, and get the states entering each group from the group sums, recursively.
    """
    n = totals.shape[-1]
    if levels == 1:
        mix = log_decay_between(totals).exp()           # (..., n, n), (r, s) used for r < s only
        idx = torch.arange(n, device=u.device)
        zero = torch.zeros((), dtype=mix.dtype, device=mix.device)
        mix = torch.where(idx[None, :] > idx[:, None], mix, zero)
        return (mix if reverse else mix.transpose(-1, -2)) @ u
    groups = (n + GROUP - 1) // GROUP
    if not isinstance(n, int):
        # a graph: one more group of padding, so that no level's group count is 1 when traced at a short L
        # (the exporter would fix a count of 1 into the graph, which then fails at a longer L)
        groups = groups + 1
    # sizes given, never inferred (-1): inferring one divides symbolic sizes, and that division of nested
    # ceilings was most of a dynamic-length export's tracing time
    pad = groups * GROUP - n
    u = pad_length(u, pad, -2).unflatten(-2, (groups, GROUP))
    totals = pad_length(totals, pad, -1).unflatten(-1, (groups, GROUP))
    before = cumsum_exclusive(totals).exp()             # decay from the group start to item r (excluded)
    after = cumsum_exclusive(totals, reverse=True).exp()  # from item r (excluded) to the group end
    into_group, read_weight = (before, after) if reverse else (after, before)
    group_u = (into_group.unsqueeze(-2) @ u).squeeze(-2)   # (..., G, D)
    group_states = carried_states(group_u, totals.sum(-1), reverse, levels - 1)
    local = carried_states(u, totals, reverse, 1)
    if in_place_ok(local):
        local.addcmul_(read_weight.unsqueeze(-1), group_states.unsqueeze(-2))
    else:
        local = local + read_weight.unsqueeze(-1) * group_states.unsqueeze(-2)
    return local.flatten(-3, -2)[..., :n, :]


def scan_states_(u: torch.Tensor, totals: torch.Tensor, reverse: bool, carry: torch.Tensor) -> torch.Tensor:
    """Eager, in place: each item's summary u_n (..., n, D) becomes the state entering it, as carried_states;
    carry (..., D) is the state entering the first item in scan order, and the one leaving the last is returned.

    A plain recurrence over the items, H_(n+1) = exp(t_n) H_n + u_n going forward (the mirror going backward):
    n steps of two small ops, one summary-sized pass in all and no second state-sized buffer, where the dense
    mix costs GROUP times the work in badly shaped GEMMs. Each state is a product of per-item factors, the
    recurrent form's exactness."""
    decay = totals.exp().unsqueeze(-1)
    for n in reversed(range(u.shape[-2])) if reverse else range(u.shape[-2]):
        item = u[..., n, :]
        entering = carry
        carry = torch.addcmul(item, entering, decay[..., n, :])
        item.copy_(entering)
    return carry


def _linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, normalize: bool,
                      eps: float) -> torch.Tensor:
    """LION-LIT: with mask 1 every query reads the same sums K^T [V, 1], O(L dk dv)."""
    sums = k.transpose(-1, -2) @ v
    if not normalize:
        return q @ sums
    out = q @ torch.cat([sums, k.sum(-2).unsqueeze(-1)], dim=-1)
    dv = v.shape[-1]
    if in_place_ok(q, k, v):
        return out[..., :dv].div_(out[..., dv:].add_(eps))
    return out[..., :dv] / (out[..., dv:] + eps)


class ChunkedInputs(NamedTuple):
    """One call's inputs cut into chunks, (B H N, c, ...) with every head's chunks on one axis (so a run of chunks
    is contiguous), and what both ways of computing the form share."""
    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    key_w: torch.Tensor     # (B H N, c, 2): forward, backward key weights
    query_w: torch.Tensor   # (B H N, c, 2): forward, backward query weights
    totals: torch.Tensor    # (B, H, N): each chunk's summed log decay
    masked: Callable[[torch.Tensor, slice], torch.Tensor]  # a run of chunks' (n, c, c) scores times their masks


def _in_runs(x: ChunkedInputs, normalize: bool, eps: float) -> torch.Tensor:
    """Eager without autograd: one direction at a time, the chunks in pieces (state_pieces) whose summaries are
    made in one workspace, carried by an in-place recurrence and read at once, and within a piece cache-sized
    runs of chunks (chunk_slabs); every result is written in place into the output and its normalisers."""
    n_items, chunk_size, dk = x.q.shape
    dv = x.v.shape[-1]
    width = dv + 1 if normalize else dv
    batch, heads, per_row = x.totals.shape
    totals = x.totals.reshape(-1)
    out = x.q.new_empty(n_items, chunk_size, dv)
    norm = x.q.new_empty(n_items, chunk_size, 1) if normalize else None
    work = x.q.new_empty(min(n_items, max(1, STATE_ELEMENTS // (dk * width))), dk * width)
    carry = None
    for direction in (0, 1):
        reverse = direction == 1
        for piece in state_pieces(batch * heads, per_row, dk * width, reverse):
            rows = max(1, (piece.stop - piece.start) // per_row)
            if (piece.stop if reverse else piece.start) % per_row == 0:        # a row starts (in scan order)
                carry = x.q.new_zeros(rows, dk * width)
            states = work[:piece.stop - piece.start].view(-1, dk, width)
            slabs = chunk_slabs(piece.start, piece.stop, chunk_size * max(chunk_size, dk))
            for sl in slabs:
                if not reverse:
                    scores = x.masked(torch.bmm(x.q[sl], x.k[sl].transpose(-1, -2)), sl)
                    torch.bmm(scores, x.v[sl], out=out[sl])
                    if normalize:
                        torch.sum(scores, dim=-1, keepdim=True, out=norm[sl])
                    del scores
                keys = x.k[sl].transpose(-1, -2) * x.key_w[sl, None, :, direction]
                at = slice(sl.start - piece.start, sl.stop - piece.start)
                torch.bmm(keys, with_ones(x.v[sl]) if normalize else x.v[sl], out=states[at])
                del keys
            carry = scan_states_(states.view(rows, -1, dk * width), totals[piece].view(rows, -1), reverse, carry)
            for sl in slabs:
                queries = x.q[sl] * x.query_w[sl, :, direction:direction + 1]
                at = slice(sl.start - piece.start, sl.stop - piece.start)
                if not normalize:
                    out[sl].baddbmm_(queries, states[at])
                    continue
                read = torch.bmm(queries, states[at])     # numerators and normalisers in one GEMM (a GEMM
                out[sl].add_(read[..., :dv])               # of width 1 for the normalisers costs as much)
                norm[sl].add_(read[..., dv:])
                if reverse:
                    out[sl].div_(norm[sl].add_(eps))
                del queries, read
    return out


def _in_one_run(x: ChunkedInputs, normalize: bool, eps: float) -> torch.Tensor:
    """Graph export and autograd: whole-tensor, out-of-place ops and the loop-free state hierarchy."""
    n_items, _, dk = x.q.shape
    dv = x.v.shape[-1]
    values = with_ones(x.v) if normalize else x.v
    out = torch.bmm(x.masked(torch.bmm(x.q, x.k.transpose(-1, -2)), slice(None)), values)
    keys = weighted_pair(x.k.transpose(-1, -2), x.key_w[:, None, :, 0], x.key_w[:, None, :, 1], -2)
    width = values.shape[-1]
    per_direction = torch.bmm(keys, values).view(*x.totals.shape, 2, dk * width)
    levels = hierarchy_levels(x.totals.shape[-1])
    states = torch.stack([carried_states(per_direction[..., 0, :], x.totals, False, levels),
                          carried_states(per_direction[..., 1, :], x.totals, True, levels)], dim=-2)
    queries = weighted_pair(x.q, x.query_w[..., :1], x.query_w[..., 1:], -1)
    out = torch.baddbmm(out, queries, states.reshape(n_items, 2 * dk, width))
    return out[..., :dv] / (out[..., dv:] + eps) if normalize else out


def chunked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, a: torch.Tensor | None,
                      normalize: bool, eps: float, chunk_size: int,
                      head_decay: torch.Tensor | None = None) -> torch.Tensor:
    """The chunkwise form; inputs (B, H, L, d), log decays a (B, H, L) or None (LION-LIT), in the compute dtype.

    head_decay: LION-D's (H,) log decays, of which a is the expansion. Every chunk of a head then has the same
    c x c mask, built once per head and repeated (exact for the last chunk too: its padding meets only zero q
    and k), instead of once per chunk."""
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}")
    if a is None:
        return _linear_attention(q, k, v, normalize, eps)
    batch, heads, length, _ = q.shape
    lean = in_place_ok(q, k, v, a)
    per_row = (length + chunk_size - 1) // chunk_size                   # chunks per (batch, head) row
    pad = per_row * chunk_size - length     # sizes given, never inferred: see carried_states

    def chunks(x: torch.Tensor) -> torch.Tensor:
        x = pad_length(x, pad, -1 if x.dim() == 3 else -2)
        return x.unflatten(2, (per_row, chunk_size)).flatten(0, 2)

    qc, kc, vc, ac = (chunks(x) for x in (q, k, v, a))
    n_items = qc.shape[0]
    totals = ac.sum(-1).unflatten(0, (batch, heads, per_row))          # (B, H, N)
    head_masks = None if head_decay is None else decay_mask(head_decay[:, None].expand(-1, chunk_size), lean)

    def masked(scores: torch.Tensor, sl: slice) -> torch.Tensor:
        """The scores (n, c, c) of a run of chunks times their masks (in place eager)."""
        if head_masks is None:
            mask = decay_mask(ac[sl], lean)
        elif lean:      # chunk m is in row m // N, of head (m // N) % H
            rows = torch.arange(sl.start, sl.stop, device=ac.device) // per_row
            mask = head_masks.index_select(0, rows % heads)
        else:           # one run: each head's mask broadcast over the batch and the chunks
            masks = head_masks.view(1, heads, 1, chunk_size, chunk_size)
            return (scores.unflatten(0, (batch, heads, per_row)) * masks).flatten(0, 2)
        return scores.mul_(mask) if lean else scores * mask

    # Forward: keys decay from token j to the end of their chunk (sum_{t=j}^{e} a_t), queries from the chunk
    # start to themselves (sum_{t=s}^{i-1}). Backward: keys sum_{t=s}^{j} a_t, queries sum_{t=i+1}^{e} a_t.
    key_w = torch.stack([cumsum_inclusive(ac, reverse=True), cumsum_inclusive(ac)], -1).exp()
    query_w = torch.stack([cumsum_exclusive(ac), cumsum_exclusive(ac, reverse=True)], -1).exp()
    x = ChunkedInputs(qc, kc, vc, key_w, query_w, totals, masked)
    out = _in_runs(x, normalize, eps) if lean else _in_one_run(x, normalize, eps)
    return out.unflatten(0, (batch, heads, per_row)).flatten(2, 3)[:, :, :length]
