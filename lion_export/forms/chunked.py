"""Chunkwise-parallel form: exact LION attention in O(L c (dk + dv) + L dk dv) work for chunk size c.

Each output is an intra-chunk part (a c x c masked block, the parallel form restricted to the chunk) plus a
forward and a backward inter-chunk part (LION-REFERENCE.md, "Chunkwise-parallel form"). The states entering
every chunk come from per-chunk summaries U_m (dk x (dv + 1): the normaliser rides along as one more column)
through a hierarchy of chunk groups (`carried_states`): within a group of GROUP chunks a small dense decay mix,
between groups the same construction one level up, LEVELS levels in all. That is O(L) for any practical L
(the top level is dense over L / (c GROUP^(LEVELS-1)) groups: 4 at L = 65536, c = 64) and stays loop-free with a
data-dependent number of chunks, so one exported graph serves every sequence length (ONNX and TensorRT have no
cheap loops): only MatMul, CumSum (all on the last axis), Exp, Where, Pad and reshapes.

Every exponent is a direct sum over the span it decays across (lion_export/forms/decay.py), so a weight near 1
stays exact however long the sequence. LION-LIT (no decay, mask 1) needs no chunks at all: Y = Q (K^T [V, 1]).

Sequences are padded at the end to a multiple of c with k = v = q = 0 and log decay 0: padding sits after every
real token, contributes nothing, and is cut off, so any L works, including L < c.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .decay import cumsum_exclusive, cumsum_inclusive, log_decay_between, pairwise_log_decay

GROUP = 16      # chunks (then groups) per group: the dense mix inside a group is GROUP x GROUP
LEVELS = 3      # levels of the hierarchy; the top one mixes all its groups densely
SLAB_ELEMENTS = 2 ** 18     # eager: c x c temporaries per run of chunks (1 MiB in fp32; see chunk_slabs)


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


def chunk_slabs(n_chunks: int | torch.SymInt, per_chunk: int) -> list[slice]:
    """Eager: runs of chunks whose c x c temporaries (per_chunk elements each) stay cache-sized, so the mask's
    elementwise passes hit cache rather than memory, and peak memory is the states, not the masks. A graph
    export (symbolic chunk count) gets one run: the graph stays loop-free."""
    if torch.compiler.is_exporting() or not isinstance(n_chunks, int):
        return [slice(None)]
    step = max(1, SLAB_ELEMENTS // per_chunk)
    return [slice(start, start + step) for start in range(0, n_chunks, step)]


def over_slabs(fn: Callable[[slice], torch.Tensor], slabs: list[slice], n_chunks: int) -> torch.Tensor:
    """fn on each run of chunks, written into one tensor along the chunk axis (2) as each run finishes (each
    run's temporaries are freed before the next is made, so the heap never holds more than one run's)."""
    if len(slabs) == 1:
        return fn(slabs[0])
    out = None
    for sl in slabs:
        part = fn(sl)
        if out is None:
            out = part.new_empty(*part.shape[:2], n_chunks, *part.shape[3:])
        out[:, :, sl] = part
        del part
    return out


def intra_chunk(qc: torch.Tensor, kc: torch.Tensor, vc: torch.Tensor, ac: torch.Tensor, normalize: bool,
                lean: bool) -> torch.Tensor:
    """The parallel form on each c x c block: (..., c, dv) values -> (..., c, dv [+ 1]) numerators [, normalisers].

    [v, 1] is formed only once the mask is folded into the scores, so the two are never alive together."""
    mask = pairwise_log_decay(ac)
    scores = bmm(qc, kc.transpose(-1, -2))
    if lean:
        scores.mul_(mask.exp_())
    else:
        scores = scores * mask.exp()
    del mask
    return bmm(scores, with_ones(vc) if normalize else vc)


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
    pad = (-n) % GROUP
    u = pad_length(u, pad, -2)
    totals = pad_length(totals, pad, -1)
    lead, width = u.shape[:-2], u.shape[-1]
    u = u.reshape(*lead, -1, GROUP, width)
    totals = totals.reshape(*lead, -1, GROUP)
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
    return local.reshape(*lead, -1, width)[..., :n, :]


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


def chunked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, a: torch.Tensor | None,
                      normalize: bool, eps: float, chunk_size: int) -> torch.Tensor:
    """The chunkwise form; inputs (B, H, L, d), log decays a (B, H, L) or None (LION-LIT), in the compute dtype."""
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}")
    if a is None:
        return _linear_attention(q, k, v, normalize, eps)
    batch, heads, length, dk = q.shape
    dv = v.shape[-1]
    lean = in_place_ok(q, k, v, a)
    pad = (-length) % chunk_size

    def chunks(x: torch.Tensor) -> torch.Tensor:
        x = pad_length(x, pad, -1 if x.dim() == 3 else -2)
        return x.reshape(batch, heads, -1, chunk_size, *x.shape[3:])

    qc, kc, vc, ac = (chunks(x) for x in (q, k, v, a))
    totals = ac.sum(-1)                                           # (B, H, N)
    n_chunks = totals.shape[-1]
    levels = hierarchy_levels(n_chunks)
    slabs = chunk_slabs(n_chunks, batch * heads * chunk_size * max(chunk_size, dk)) if lean else [slice(None)]
    out = over_slabs(lambda sl: intra_chunk(qc[:, :, sl], kc[:, :, sl], vc[:, :, sl], ac[:, :, sl], normalize,
                                            lean), slabs, n_chunks)   # (B, H, N, c, width)
    width = out.shape[-1]
    # Forward: keys decay from token j to the end of their chunk (sum_{t=j}^{e} a_t), queries from the chunk
    # start to themselves (sum_{t=s}^{i-1}). Backward: keys sum_{t=s}^{j} a_t, queries sum_{t=i+1}^{e} a_t.
    # One direction at a time, the key weights applied to the values: at most ~3 output-sized tensors live.
    for reverse in (False, True):
        key_w = cumsum_inclusive(ac, reverse=not reverse).exp().unsqueeze(-1)
        query_w = cumsum_exclusive(ac, reverse=reverse).exp().unsqueeze(-1)

        def summaries(sl: slice) -> torch.Tensor:
            weighted = with_ones(vc[:, :, sl]) if normalize else vc[:, :, sl]
            weighted = weighted.mul_(key_w[:, :, sl]) if normalize and lean else weighted * key_w[:, :, sl]
            return bmm(kc[:, :, sl].transpose(-1, -2), weighted).flatten(-2)   # (B, H, n, dk * width)

        states = carried_states(over_slabs(summaries, slabs, n_chunks), totals, reverse, levels)
        states = states.reshape(batch, heads, n_chunks, dk, width)
        for sl in slabs:
            read = bmm(qc[:, :, sl] * query_w[:, :, sl], states[:, :, sl])
            if lean:
                out[:, :, sl].add_(read)
            else:
                out = out + read
            del read
        del states
    if normalize and lean:      # in place, returning a view: no second output-sized buffer
        out = out[..., :dv].div_(out[..., dv:].add_(eps))
    elif normalize:
        out = out[..., :dv] / (out[..., dv:] + eps)
    return out.reshape(batch, heads, -1, dv)[:, :, :length]
