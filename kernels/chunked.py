"""Triton kernels for LION's chunkwise form: a fused forward (inference and training) and a fused backward.

Notation (LION-REFERENCE.md, "Chunkwise-parallel form"): S_ij = (q_i . k_j) M_ij, num_i = sum_j S_ij v_j,
den_i = sum_j S_ij, y_i = num_i / (den_i + eps) (normalised) or y_i = num_i. Chunks are CHUNK tokens [s, e]; the last
one is masked (loads beyond L read 0, so padded tokens carry k = v = 0 and log decay 0 and contribute nothing).

Exponents. Every decay is the exp of a sum of log decays a_t <= 0 over the tokens between two positions, taken
later-minus-earlier and never from long prefix sums: within a chunk from the chunk's own cumsums (at most CHUNK
terms, clamped at 0 against rounding), across chunks by multiplying the carried state by exp(chunk total) once per
chunk. So every exp() argument is <= 0 (nothing overflows, fp16 inputs included), and the rounding of an exponent
is bounded by the size of one chunk's sums, independent of L. (Masked per-pair sums, as forms/decay.py builds them
for the graphs, would be exact per pair, but cost a c x c cumsum: twice the shared memory and compile time of the
kernels for sm_80 here, so the kernels take the difference of chunk-local cumsums, as fused linear-attention kernels
commonly do.) Per chunk, for token i:
    excl_i = sum_{s<=t<i} a_t   incl_i = sum_{s<=t<=i} a_t   rev_excl_i = sum_{i<t<=e} a_t   rev_incl_i = sum_{i<=t<=e}
and the intra-chunk log mask is log M_ij (key counted, query not; the diagonal 0).

Forward (`_lion_chunked_fwd`, grid (B*H, dv tiles)). One program owns one head and one dv tile and sweeps twice:
  1. chunks left to right: intra-chunk block (c x c scores, diagonal counted here only) plus the forward
     inter-chunk part exp(excl_i) q_i^T Hf, with Hf <- exp(total) Hf + sum_j exp(rev_incl_j) k_j v_j^T (and zf for
     the normaliser); the partial numerators / normalisers go to fp32 scratch;
  2. chunks right to left: the backward part exp(rev_excl_i) q_i^T Hb, Hb <- exp(total) Hb + sum_j exp(incl_j)
     k_j v_j^T; it adds the stored partials, writes y in q's dtype and, when normalising, writes the complete num and
     den back into the scratch: they are what the backward needs.
  Each tile recomputes the c x c scores and den (cheap next to its dots) so no two programs write the same word.
  Memory: the scratch is (B, H, L, dv) + (B, H, tiles, L) fp32, O(L dv) per head; registers hold the dk x dv-tile
  state and c x c tiles. Nothing of size L x L exists.

Saved for backward: q, k, v, a (the inputs) and, when normalising, num (B, H, L, dv) and den (B, H, L) in fp32, i.e.
4 (L dv + L) bytes per head on top of the inputs (8 for fp64). The backward forms dL/dnum and dL/dden from them and
dy; nothing of the forward is recomputed except the per-chunk c x c scores.

Backward (derivation). With dnum_i = dL/dnum_i and dden_i = dL/dden_i (normalised: dnum_i = dy_i / (den_i + eps),
dden_i = -(dy_i . num_i) / (den_i + eps)^2; unnormalised: dnum = dy, dden = 0), the score gradient is
dS_ij = dnum_i . v_j + dden_i, and
    dq_i = sum_j M_ij dS_ij k_j,   dk_j = sum_i M_ij dS_ij q_i,   dv_j = sum_i S_ij dnum_i.
Each is a LION attention of its own (dq: queries dnum, keys v, values k, mask M; dk, dv: the transposed mask), so
each is computed chunkwise with carried states, like the forward:
  `_lion_chunked_bwd_dq` carries H = sum_j w_j k_j v_j^T and z = sum_j w_j k_j (the forward's states) and reads them
     with dnum_i and dden_i;
  `_lion_chunked_bwd_dkdv` carries G = sum_i w_i q_i dnum_i^T and g = sum_i w_i q_i dden_i and reads them with v_j
     (dk) and k_j (dv). For G the roles of the two decays swap (the query is now the summed index): the forward
     sweep writes with exp(rev_excl_i), reads with exp(incl_j); the backward sweep writes exp(excl_i), reads
     exp(rev_incl_j).
  Both run as grid (B*H, 2): program 0 sweeps left to right (its inter-chunk pairs, plus the intra-chunk block),
  program 1 right to left; each writes its own fp32 partial and the launcher adds the two.
Decay gradient. log M_ij is the sum of a_t over the path {j..i-1} (j < i) or {i+1..j} (j > i), so with
W_ij = dS_ij S_ij, dL/da_t = sum of W_ij over the pairs whose path contains t:
    da_t = sum_{j <= t < i} W_ij + sum_{i < t <= j} W_ij = sum_{m > t} gP_m + sum_{m >= t} gQ_m,
    gP_m = sum_{j<m} W_mj - sum_{i>m} W_im,   gQ_m = sum_{i<m} W_im - sum_{j>m} W_mj
(gP is d/dP_m of the lower triangle, gQ d/dQ_m of the upper one; P, Q the exclusive / inclusive prefix sums).
The row sums of W are q_m . dq_m and the column sums k_m . dk_m restricted to one triangle, so the kernels emit, per
token, q . dq and k . dk of each inter-chunk part (signed into gP / gQ) and the intra-chunk row / column sums of W
split by triangle; the launcher sums those partials and takes one reverse cumsum over L (of gradients, not of
exponents, so a long sum is harmless). The diagonal (M_ii = 1) has no decay gradient.
Backward memory: fp32 partials of dq, dk, dv (two each) and of gP, gQ (eight rows of L), O(L d) per head.

fp32 inputs use IEEE fp32 dots (a GPU would otherwise use TF32, about 1e-3 relative error); fp16 / bf16 inputs use
the default (TF32 on the GPU): their own rounding is of that order. fp64 inputs (gradcheck) compute in fp64: the
compute dtype is the log decays' dtype, fp32 unless the inputs are fp64.

GPU status: verified under TRITON_INTERPRET=1 only (no GPU in the session that wrote them); every kernel compiles
for sm_80 (triton.compile on a CPU, fp16 / bf16 / fp32, head dims 16..128, chunks 16..128). Shared memory measured
from those compiles (bytes; limits: 48 K without opt-in, 99 K on sm_86 / sm_89, 163 K on sm_80 / sm_87, 227 K on
sm_90): forward fp16 d=64 c=64 16 K, fp32 d=64 c=64 49 K, fp32 d=128 c=64 82 K, fp32 d=128 c=128 164 K; backward
fp16 / bf16 d=128 c=64 64 K (dq) / 96 K (dk, dv), fp32 d=64 c=64 82 K / 96 K, fp32 d=128 c=32 128 K / 144 K. So fp32
training at head dim 128 does not fit sm_86 / sm_89; fp16 / bf16 inputs fit everywhere. Not tuned (num_warps is a
rule of thumb) and not timed.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .aot import KernelConfig, KernelSpec, ProblemShape, dv_tiles, padded_head_dim, scan_node_arguments

#: head dims the kernels take (padded to a power of two >= 16 inside, masked)
MAX_HEAD_DIM = 128
#: chunk sizes the kernels take: powers of two, so a chunk is one tile (and c x c dots are >= 16 x 16)
CHUNK_SIZES = (16, 32, 64, 128)
#: widest dv tile a forward program holds (dk x 64 fp32 state); the backward keeps the whole dv
_MAX_BLOCK_DV = 64
_NUM_STAGES = 1


@triton.jit
def _chunk_decays(a_ptr, start, L, CHUNK: tl.constexpr):
    """The chunk's log-decay sums (module docstring, "Exponents"), all <= 0.

    Returns excl, incl, rev_excl, rev_incl (CHUNK,), the chunk total, and the (CHUNK, CHUNK) log mask.
    """
    t = tl.arange(0, CHUNK)
    a = tl.load(a_ptr + start + t, mask=start + t < L, other=0.0)
    incl = tl.cumsum(a, 0)
    rev_incl = tl.cumsum(a, 0, reverse=True)
    # rounding may leave a difference a hair above 0 (a parallel scan is not monotone bit for bit): clamp it
    excl = tl.minimum(incl - a, 0.0)
    rev_excl = tl.minimum(rev_incl - a, 0.0)
    row = t[:, None]
    col = t[None, :]
    # [i, j] = sum_{j <= t < i} a_t below the diagonal, sum_{i < t <= j} a_t above it, 0 on it
    log_mask = tl.where(col < row, excl[:, None] - excl[None, :], incl[None, :] - incl[:, None])
    log_mask = tl.minimum(tl.where(col == row, 0.0, log_mask), 0.0)
    return excl, incl, rev_excl, rev_incl, tl.sum(a, 0), log_mask


@triton.jit
def _lion_chunked_fwd(q, k, v, log_decay, L, y, num_scratch, den_scratch,
                      DK: tl.constexpr, DV: tl.constexpr, BLOCK_DK: tl.constexpr, BLOCK_DV: tl.constexpr,
                      CHUNK: tl.constexpr, NORMALIZE: tl.constexpr, EPS: tl.constexpr, IEEE: tl.constexpr):
    bh = tl.program_id(0).to(tl.int64)
    tile = tl.program_id(1)
    n_tiles = tl.num_programs(1)
    compute: tl.constexpr = log_decay.dtype.element_ty
    precision: tl.constexpr = "ieee" if IEEE else "tf32"
    t = tl.arange(0, CHUNK)
    cols_k = tl.arange(0, BLOCK_DK)
    cols_v = tile * BLOCK_DV + tl.arange(0, BLOCK_DV)
    tile_k = t[:, None] * DK + cols_k[None, :]
    tile_v = t[:, None] * DV + cols_v[None, :]
    q += bh * L * DK
    k += bh * L * DK
    v += bh * L * DV
    y += bh * L * DV
    num_scratch += bh * L * DV
    log_decay += bh * L
    den_scratch += (bh * n_tiles + tile) * L
    n_chunks = tl.cdiv(L, CHUNK)

    # sweep 1, left to right: intra-chunk block + forward inter-chunk part, partials to scratch
    state = tl.zeros((BLOCK_DK, BLOCK_DV), dtype=compute)
    norm = tl.zeros((BLOCK_DK,), dtype=compute)
    for n in range(0, n_chunks):
        start = n * CHUNK
        in_seq = start + t < L
        in_k = in_seq[:, None] & (cols_k[None, :] < DK)
        in_v = in_seq[:, None] & (cols_v[None, :] < DV)
        q_c = tl.load(q + start * DK + tile_k, mask=in_k, other=0.0).to(compute)
        k_c = tl.load(k + start * DK + tile_k, mask=in_k, other=0.0).to(compute)
        v_c = tl.load(v + start * DV + tile_v, mask=in_v, other=0.0).to(compute)
        excl, incl, rev_excl, rev_incl, total, log_mask = _chunk_decays(log_decay, start, L, CHUNK)
        scores = tl.dot(q_c, tl.trans(k_c), input_precision=precision) * tl.exp(log_mask)
        q_in = q_c * tl.exp(excl)[:, None]
        num = tl.dot(scores, v_c, input_precision=precision) + tl.dot(q_in, state, input_precision=precision)
        tl.store(num_scratch + start * DV + tile_v, num, mask=in_v)
        k_out = k_c * tl.exp(rev_incl)[:, None]
        state = state * tl.exp(total) + tl.dot(tl.trans(k_out), v_c, input_precision=precision)
        if NORMALIZE:
            den = tl.sum(scores, 1) + tl.sum(q_in * norm[None, :], 1)
            tl.store(den_scratch + start + t, den, mask=in_seq)
            norm = norm * tl.exp(total) + tl.sum(k_out, 0)

    # sweep 2 reads what other threads of this program stored in sweep 1
    tl.debug_barrier()

    # sweep 2, right to left: backward inter-chunk part, completes num / den and writes y
    state = tl.zeros((BLOCK_DK, BLOCK_DV), dtype=compute)
    norm = tl.zeros((BLOCK_DK,), dtype=compute)
    for step in range(0, n_chunks):
        start = (n_chunks - 1 - step) * CHUNK
        in_seq = start + t < L
        in_k = in_seq[:, None] & (cols_k[None, :] < DK)
        in_v = in_seq[:, None] & (cols_v[None, :] < DV)
        q_c = tl.load(q + start * DK + tile_k, mask=in_k, other=0.0).to(compute)
        k_c = tl.load(k + start * DK + tile_k, mask=in_k, other=0.0).to(compute)
        v_c = tl.load(v + start * DV + tile_v, mask=in_v, other=0.0).to(compute)
        excl, incl, rev_excl, rev_incl, total, log_mask = _chunk_decays(log_decay, start, L, CHUNK)
        q_in = q_c * tl.exp(rev_excl)[:, None]
        num = tl.dot(q_in, state, input_precision=precision)
        num += tl.load(num_scratch + start * DV + tile_v, mask=in_v, other=0.0)
        k_out = k_c * tl.exp(incl)[:, None]
        state = state * tl.exp(total) + tl.dot(tl.trans(k_out), v_c, input_precision=precision)
        if NORMALIZE:
            den = tl.sum(q_in * norm[None, :], 1) + tl.load(den_scratch + start + t, mask=in_seq, other=0.0)
            norm = norm * tl.exp(total) + tl.sum(k_out, 0)
            tl.store(num_scratch + start * DV + tile_v, num, mask=in_v)
            tl.store(den_scratch + start + t, den, mask=in_seq)
            num = num / (den + EPS)[:, None]
        tl.store(y + start * DV + tile_v, num.to(y.dtype.element_ty), mask=in_v)


@triton.jit
def _output_grads(dy_ptr, num_ptr, den_ptr, start, tile_v, in_seq, in_v, CHUNK: tl.constexpr,
                  compute: tl.constexpr, NORMALIZE: tl.constexpr, EPS: tl.constexpr):
    """dL/dnum (CHUNK, BLOCK_DV) and dL/dden (CHUNK,) of one chunk, from dy and the saved num / den."""
    dy = tl.load(dy_ptr + tile_v, mask=in_v, other=0.0).to(compute)
    if NORMALIZE:
        # 1 on padded rows: no 0 / 0 when eps = 0
        den = tl.load(den_ptr + start + tl.arange(0, CHUNK), mask=in_seq, other=1.0) + EPS
        num = tl.load(num_ptr + tile_v, mask=in_v, other=0.0)
        return dy / den[:, None], -tl.sum(dy * num, 1) / (den * den)
    else:
        return dy, tl.zeros((CHUNK,), dtype=compute)


@triton.jit
def _lion_chunked_bwd_dq(q_ptr, k_ptr, v_ptr, a_ptr, dy_ptr, num_ptr, den_ptr, L, dq_ptr, g_ptr,
                         DK: tl.constexpr, DV: tl.constexpr, BLOCK_DK: tl.constexpr, BLOCK_DV: tl.constexpr,
                         CHUNK: tl.constexpr, NORMALIZE: tl.constexpr, EPS: tl.constexpr, IEEE: tl.constexpr):
    bh = tl.program_id(0).to(tl.int64)
    backward = tl.program_id(1)
    part = backward * tl.num_programs(0) + bh
    compute: tl.constexpr = a_ptr.dtype.element_ty
    precision: tl.constexpr = "ieee" if IEEE else "tf32"
    t = tl.arange(0, CHUNK)
    row = t[:, None]
    col = t[None, :]
    cols_k = tl.arange(0, BLOCK_DK)
    cols_v = tl.arange(0, BLOCK_DV)
    tile_k = t[:, None] * DK + cols_k[None, :]
    tile_v = t[:, None] * DV + cols_v[None, :]
    q_ptr += bh * L * DK
    k_ptr += bh * L * DK
    v_ptr += bh * L * DV
    dy_ptr += bh * L * DV
    num_ptr += bh * L * DV
    a_ptr += bh * L
    den_ptr += bh * L
    dq_ptr += part * L * DK          # (2, B*H, L, DK): one partial per sweep
    g_ptr += part * 2 * L            # (2, B*H, 2, L): [gP, gQ] per sweep
    n_chunks = tl.cdiv(L, CHUNK)

    state = tl.zeros((BLOCK_DK, BLOCK_DV), dtype=compute)    # H = sum_j w_j k_j v_j^T over the swept chunks
    norm = tl.zeros((BLOCK_DK,), dtype=compute)              # z = sum_j w_j k_j
    for step in range(0, n_chunks):
        start = (step + backward * (n_chunks - 1 - 2 * step)) * CHUNK    # step, or n_chunks - 1 - step
        in_seq = start + t < L
        in_k = in_seq[:, None] & (cols_k[None, :] < DK)
        in_v = in_seq[:, None] & (cols_v[None, :] < DV)
        q = tl.load(q_ptr + start * DK + tile_k, mask=in_k, other=0.0).to(compute)
        k = tl.load(k_ptr + start * DK + tile_k, mask=in_k, other=0.0).to(compute)
        v = tl.load(v_ptr + start * DV + tile_v, mask=in_v, other=0.0).to(compute)
        dnum, dden = _output_grads(dy_ptr + start * DV, num_ptr + start * DV, den_ptr, start, tile_v, in_seq, in_v,
                                   CHUNK, compute, NORMALIZE, EPS)
        excl, incl, rev_excl, rev_incl, total, log_mask = _chunk_decays(a_ptr, start, L, CHUNK)
        read = tl.where(backward == 0, excl, rev_excl)
        write = tl.where(backward == 0, rev_incl, incl)

        # inter-chunk: dq_i = exp(read_i) (H dnum_i + z dden_i); q_i . dq_i is this triangle's row sum of W
        dq = tl.dot(dnum, tl.trans(state), input_precision=precision)
        if NORMALIZE:
            dq += dden[:, None] * norm[None, :]
        dq = dq * tl.exp(read)[:, None]
        row_sum = tl.sum(q * dq, 1)
        g_lower = tl.where(backward == 0, row_sum, 0.0)
        g_upper = tl.where(backward == 0, 0.0, -row_sum)
        if backward == 0:       # the intra-chunk block, and its whole share of the decay gradient
            grad_scores = tl.dot(dnum, tl.trans(v), input_precision=precision)
            grad_scores = (grad_scores + dden[:, None]) * tl.exp(log_mask)
            dq += tl.dot(grad_scores, k, input_precision=precision)
            w = grad_scores * tl.dot(q, tl.trans(k), input_precision=precision)
            w_lower = tl.where(col < row, w, 0.0)
            w_upper = tl.where(col > row, w, 0.0)
            g_lower += tl.sum(w_lower, 1) - tl.sum(w_lower, 0)
            g_upper += tl.sum(w_upper, 0) - tl.sum(w_upper, 1)
        tl.store(dq_ptr + start * DK + tile_k, dq, mask=in_k)
        tl.store(g_ptr + start + t, g_lower, mask=in_seq)
        tl.store(g_ptr + L + start + t, g_upper, mask=in_seq)

        k_out = k * tl.exp(write)[:, None]
        state = state * tl.exp(total) + tl.dot(tl.trans(k_out), v, input_precision=precision)
        if NORMALIZE:
            norm = norm * tl.exp(total) + tl.sum(k_out, 0)


@triton.jit
def _lion_chunked_bwd_dkdv(q_ptr, k_ptr, v_ptr, a_ptr, dy_ptr, num_ptr, den_ptr, L, dk_ptr, dv_ptr, g_ptr,
                           DK: tl.constexpr, DV: tl.constexpr, BLOCK_DK: tl.constexpr, BLOCK_DV: tl.constexpr,
                           CHUNK: tl.constexpr, NORMALIZE: tl.constexpr, EPS: tl.constexpr, IEEE: tl.constexpr):
    bh = tl.program_id(0).to(tl.int64)
    backward = tl.program_id(1)
    part = backward * tl.num_programs(0) + bh
    compute: tl.constexpr = a_ptr.dtype.element_ty
    precision: tl.constexpr = "ieee" if IEEE else "tf32"
    t = tl.arange(0, CHUNK)
    cols_k = tl.arange(0, BLOCK_DK)
    cols_v = tl.arange(0, BLOCK_DV)
    tile_k = t[:, None] * DK + cols_k[None, :]
    tile_v = t[:, None] * DV + cols_v[None, :]
    q_ptr += bh * L * DK
    k_ptr += bh * L * DK
    v_ptr += bh * L * DV
    dy_ptr += bh * L * DV
    num_ptr += bh * L * DV
    a_ptr += bh * L
    den_ptr += bh * L
    dk_ptr += part * L * DK
    dv_ptr += part * L * DV
    g_ptr += part * 2 * L
    n_chunks = tl.cdiv(L, CHUNK)

    state = tl.zeros((BLOCK_DK, BLOCK_DV), dtype=compute)    # G = sum_i w_i q_i dnum_i^T over the swept chunks
    norm = tl.zeros((BLOCK_DK,), dtype=compute)              # g = sum_i w_i q_i dden_i
    for step in range(0, n_chunks):
        start = (step + backward * (n_chunks - 1 - 2 * step)) * CHUNK    # step, or n_chunks - 1 - step
        in_seq = start + t < L
        in_k = in_seq[:, None] & (cols_k[None, :] < DK)
        in_v = in_seq[:, None] & (cols_v[None, :] < DV)
        q = tl.load(q_ptr + start * DK + tile_k, mask=in_k, other=0.0).to(compute)
        k = tl.load(k_ptr + start * DK + tile_k, mask=in_k, other=0.0).to(compute)
        v = tl.load(v_ptr + start * DV + tile_v, mask=in_v, other=0.0).to(compute)
        dnum, dden = _output_grads(dy_ptr + start * DV, num_ptr + start * DV, den_ptr, start, tile_v, in_seq, in_v,
                                   CHUNK, compute, NORMALIZE, EPS)
        excl, incl, rev_excl, rev_incl, total, log_mask = _chunk_decays(a_ptr, start, L, CHUNK)
        # the summed index i is now the query: its decay is counted from i + 1 (forward) or up to i - 1 (backward)
        read = tl.where(backward == 0, incl, rev_incl)
        write = tl.where(backward == 0, rev_excl, excl)

        # inter-chunk: dk_j = exp(read_j) (G v_j + g), dv_j = exp(read_j) G^T k_j; k_j . dk_j is a column sum of W
        decay_in = tl.exp(read)[:, None]
        dk = tl.dot(v, tl.trans(state), input_precision=precision)
        if NORMALIZE:
            dk += norm[None, :]
        dk = dk * decay_in
        dv = tl.dot(k * decay_in, state, input_precision=precision)
        col_sum = tl.sum(k * dk, 1)
        g_lower = tl.where(backward == 0, 0.0, -col_sum)
        g_upper = tl.where(backward == 0, col_sum, 0.0)
        if backward == 0:       # the intra-chunk block (its decay gradient is counted by the dq kernel)
            mask = tl.exp(log_mask)
            grad_scores = tl.dot(dnum, tl.trans(v), input_precision=precision)
            grad_scores = (grad_scores + dden[:, None]) * mask
            scores = tl.dot(q, tl.trans(k), input_precision=precision) * mask
            dk += tl.dot(tl.trans(grad_scores), q, input_precision=precision)
            dv += tl.dot(tl.trans(scores), dnum, input_precision=precision)
        tl.store(dk_ptr + start * DK + tile_k, dk, mask=in_k)
        tl.store(dv_ptr + start * DV + tile_v, dv, mask=in_v)
        tl.store(g_ptr + start + t, g_lower, mask=in_seq)
        tl.store(g_ptr + L + start + t, g_upper, mask=in_seq)

        q_out = q * tl.exp(write)[:, None]
        state = state * tl.exp(total) + tl.dot(tl.trans(q_out), dnum, input_precision=precision)
        if NORMALIZE:
            norm = norm * tl.exp(total) + tl.sum(q_out * dden[:, None], 0)


def _block_dv(dv: int) -> int:
    return min(padded_head_dim(dv), _MAX_BLOCK_DV)


def _num_warps(dk: int, dv: int, chunk_size: int) -> int:
    """4 warps for tiles up to 64 wide, 8 beyond (not tuned on a GPU yet)."""
    return 4 if max(padded_head_dim(dk), padded_head_dim(dv), chunk_size) <= 64 else 8


def _backward_chunk(dk: int, dv: int, chunk_size: int, ieee: bool) -> int:
    """The backward's chunk: any chunk gives the same gradients, so it may differ from the forward's.

    Compiled for sm_80, the IEEE-precision (fp32 input) backward at head dim 128 needs 192 KB (dq) and 224 KB (dk, dv)
    of shared memory at chunk 64, more than A100 / Orin offer (164 KB); at chunk 32 it needs 128 / 144 KB. fp16 / bf16
    inputs need at most 96 KB at chunk 64.
    """
    if ieee and max(padded_head_dim(dk), padded_head_dim(dv)) > 64:
        return min(chunk_size, 32)
    return chunk_size


def _forward_grid(shape: ProblemShape) -> tuple[int, int, int]:
    return shape.batch * shape.heads, dv_tiles(shape.dv, _block_dv(shape.dv)), 1


def check_problem(dk: int, dv: int, chunk_size: int) -> None:
    """The head dims and chunk sizes the kernels are written for; a clear ValueError otherwise."""
    if not (1 <= dk <= MAX_HEAD_DIM and 1 <= dv <= MAX_HEAD_DIM):
        raise ValueError(f"the chunked Triton kernels support head dims 1..{MAX_HEAD_DIM}, got dk={dk}, dv={dv}")
    if chunk_size not in CHUNK_SIZES:
        raise ValueError(f"the chunked Triton kernels need chunk_size in {CHUNK_SIZES}, got {chunk_size}")


def kernel_chunk_size(chunk_size: int) -> int:
    """The chunk the kernels run for a requested chunk size: the smallest of CHUNK_SIZES at or above it (capped at
    the largest). The result does not depend on the chunk, so any positive request is honoured this way, and a model
    configured for the PyTorch form (say chunk 8) trains unchanged on the kernels."""
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    return min(CHUNK_SIZES[-1], max(CHUNK_SIZES[0], triton.next_power_of_2(chunk_size)))


def _constexprs(dk: int, dv: int, block_dv: int, chunk_size: int, normalize: bool, eps: float,
                ieee: bool) -> dict[str, int | float | bool]:
    return {"DK": dk, "DV": dv, "BLOCK_DK": padded_head_dim(dk), "BLOCK_DV": block_dv, "CHUNK": chunk_size,
            "NORMALIZE": bool(normalize), "EPS": float(eps), "IEEE": bool(ieee)}


def _ieee(dtype: torch.dtype) -> bool:
    return dtype in (torch.float32, torch.float64)


def chunked_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, a: torch.Tensor, *, normalize: bool,
                    eps: float, chunk_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Launch the forward on contiguous, validated inputs. Returns y (q's dtype) and the scratch num, den.

    a's dtype is the compute dtype (fp32, or fp64 for fp64 inputs). After the launch, when normalising, num
    (B, H, L, dv) and den (B, H, tiles, L) hold the complete numerators and normalisers.
    """
    batch, heads, length, dk = q.shape
    dv = v.shape[-1]
    y = torch.empty_like(v)
    num = torch.empty(batch, heads, length, dv, dtype=a.dtype, device=q.device)
    den = torch.empty(batch, heads, dv_tiles(dv, _block_dv(dv)), length, dtype=a.dtype, device=q.device)
    if y.numel():
        grid = _forward_grid(ProblemShape(batch, heads, length, dk, dv))
        _lion_chunked_fwd[grid](q, k, v, a, length, y, num, den,
                                **_constexprs(dk, dv, _block_dv(dv), chunk_size, normalize, eps, _ieee(q.dtype)),
                                num_warps=_num_warps(dk, dv, chunk_size), num_stages=_NUM_STAGES)
    return y, num, den


def chunked_backward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, a: torch.Tensor, dy: torch.Tensor,
                     num: torch.Tensor, den: torch.Tensor, *, normalize: bool, eps: float,
                     chunk_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """dq, dk, dv (in the compute dtype) and da from the saved inputs, num (B, H, L, dv), den (B, H, L), and dy.

    When not normalising, num and den are not read (pass any tensors of the compute dtype).
    """
    batch, heads, length, dk = q.shape
    dv = v.shape[-1]
    bh = batch * heads
    options = {"dtype": a.dtype, "device": q.device}
    dq = torch.empty(2, batch, heads, length, dk, **options)
    dk_parts = torch.empty(2, batch, heads, length, dk, **options)
    dv_parts = torch.empty(2, batch, heads, length, dv, **options)
    g = torch.empty(2, 2, bh, 2, length, **options)       # (kernel, sweep, B*H, [gP, gQ], L)
    if dq.numel() and dv_parts.numel():
        chunk = _backward_chunk(dk, dv, chunk_size, _ieee(q.dtype))
        meta = _constexprs(dk, dv, padded_head_dim(dv), chunk, normalize, eps, _ieee(q.dtype))
        launch = {"num_warps": _num_warps(dk, dv, chunk), "num_stages": _NUM_STAGES}
        _lion_chunked_bwd_dq[(bh, 2)](q, k, v, a, dy, num, den, length, dq, g[0], **meta, **launch)
        _lion_chunked_bwd_dkdv[(bh, 2)](q, k, v, a, dy, num, den, length, dk_parts, dv_parts, g[1],
                                        **meta, **launch)
    else:
        for part in (dq, dk_parts, dv_parts, g):
            part.zero_()
    g_lower, g_upper = g.sum(dim=(0, 1)).unbind(1)          # gP, gQ: (B*H, L)
    # da_t = sum_{m > t} gP_m + sum_{m >= t} gQ_m: one reverse cumsum of gQ plus gP shifted one token left
    shifted = torch.cat([g_lower[:, 1:], torch.zeros_like(g_lower[:, :1])], dim=1)
    da = (g_upper + shifted).flip(1).cumsum(1).flip(1)
    return dq.sum(0), dk_parts.sum(0), dv_parts.sum(0), da.view(batch, heads, length)


def aot_specs(config: KernelConfig) -> list[KernelSpec]:
    """The forward kernel as an AOT launcher calls it: inference needs nothing else.

    The backward kernels are training-only and launched from PyTorch, so they are not described here.
    Arguments, named as the kernel's parameters (the scan kernel's convention): q, k, v, log_decay (fp32) as inputs;
    L; y, then the fp32 scratch num_scratch (B, H, L, dv) and den_scratch (B, H, tiles, L) as outputs.
    Grid (B*H, tiles, 1), tiles = ceil(dv / BLOCK_DV).
    """
    check_problem(config.dk, config.dv, config.chunk_size)
    dtype = config.dtype
    block_dv = _block_dv(config.dv)
    args = scan_node_arguments(dtype, block_dv)
    return [KernelSpec(
        name="lion_chunked_fwd", fn=_lion_chunked_fwd, args=args,
        constexprs=_constexprs(config.dk, config.dv, block_dv, config.chunk_size, config.normalize, config.eps,
                               ieee=dtype == "fp32"),
        num_warps=_num_warps(config.dk, config.dv, config.chunk_size), grid=_forward_grid,
        grid_formula=("B * H", f"ceil(dv / {block_dv})", "1"), num_stages=_NUM_STAGES)]
