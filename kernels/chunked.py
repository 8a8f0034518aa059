"""Triton kernels for LION's chunkwise form, laid out for GPU parallelism: chunk states, then every chunk at once.

Notation (docs/maths.md, "Form 3: chunked"): S_ij = (q_i . k_j) M_ij, num_i = sum_j S_ij v_j,
den_i = sum_j S_ij, y_i = num_i / (den_i + eps) (normalised) or y_i = num_i. Chunks are CHUNK tokens [s, e]; the last
one is masked (loads beyond L read 0, so padded tokens carry k = v = 0 and log decay 0 and contribute nothing).

Why two phases. A program that sweeps a whole head (the scan kernel's layout) gives a GPU only B*H programs, each a
chain of L / CHUNK dependent steps; at B*H = 32 that leaves most of a 132-SM H200 idle. Here only the chunk
*states* are a chain, and a cheap one (one c x dx x dy product per step); everything else runs one program per
(chunk, head), B*H*L/CHUNK programs (2048 at B*H = 32, L = 4096, c = 64), as fused linear-attention training kernels
commonly do:
  1. `_lion_chunked_states`, grid (B*H, state tiles, 2): per head, per (dk, dv) tile of the state and per direction,
     one sweep over the chunks storing the state that *enters* each chunk:
        left[n]  = sum over keys j in chunks < n of exp(sum_{j <= t < s_n} a_t) k_j v_j^T   (and z = same with 1)
        right[n] = sum over keys j in chunks > n of exp(sum_{e_n < t <= j} a_t) k_j v_j^T
     into an fp32 buffer (2, B, H, N, dk, dv) (+ (2, B, H, N, dk) normaliser states), N = ceil(L / CHUNK).
  2. `_lion_chunked_out`, grid (N, B*H, dv tiles): chunk n's intra-chunk block (c x c scores, diagonal included) plus
     exp(excl_i) q_i^T left[n] + exp(rev_excl_i) q_i^T right[n]; writes y and, for the backward, den (B, H, L) fp32.
Memory: the state buffer is 2 N dk dv fp32 per head (2 MiB at L = 4096, d = 64, c = 64; it scales as L / c); nothing
of size L x L or L x c exists.

Exponents. Every decay is the exp of a sum of log decays a_t <= 0 over the tokens between two positions, taken
later-minus-earlier and never from long prefix sums: within a chunk from the chunk's own cumsums (at most CHUNK
terms, clamped at 0 against rounding; the intra-chunk mask as a direct sum over each pair's own span), across chunks by multiplying a state by exp(chunk total) once per chunk. So
every exp() argument is <= 0 (nothing overflows, fp16 inputs included), and the rounding of an exponent is bounded by
the size of one chunk's sums, independent of L. Per chunk, for token i:
    excl_i = sum_{s<=t<i} a_t   incl_i = sum_{s<=t<=i} a_t   rev_excl_i = sum_{i<t<=e} a_t   rev_incl_i = sum_{i<=t<=e}
and the intra-chunk log mask is log M_ij (key counted, query not; the diagonal 0).

Saved for backward: q, k, v, a, and when normalising y (q's dtype) and den (B, H, L) fp32.

Backward (derivation). With dnum_i = dL/dnum_i and dden_i = dL/dden_i (normalised: dnum_i = dy_i / (den_i + eps),
dden_i = -(dy_i . num_i) / (den_i + eps)^2 = -(dy_i . y_i) / (den_i + eps), formed from the saved y as
FlashAttention forms its rowsum(dO * O); unnormalised: dnum = dy, dden = 0), the score gradient is
dS_ij = dnum_i . v_j + dden_i, and
    dq_i = sum_j M_ij dS_ij k_j,   dk_j = sum_i M_ij dS_ij q_i,   dv_j = sum_i S_ij dnum_i.
Each is a LION attention of its own, so it is computed with chunk states exactly like the forward:
  dq reads the forward's states (recomputed by `_lion_chunked_states`: cheaper than keeping them):
     dq_i = exp(excl_i) (left[n] dnum_i + z_left dden_i) + exp(rev_excl_i) (right[n] dnum_i + ...) + intra block;
  dk, dv read states of the queries, G = sum_i w_i q_i dnum_i^T and g = sum_i w_i q_i dden_i
     (`_lion_chunked_bwd_states`). The query is now the summed index, so its own decay is not counted when it
     writes (exp(rev_excl_i) leftwards, exp(excl_i) rightwards) and the key's is when it reads:
     dk_j = exp(incl_j) (G_left[n] v_j + g_left) + exp(rev_incl_j) (G_right[n] v_j + g_right) + intra block,
     dv_j = exp(incl_j) G_left[n]^T k_j + exp(rev_incl_j) G_right[n]^T k_j + intra block.
  `_lion_chunked_bwd_dq` and `_lion_chunked_bwd_dkdv` run one program per (chunk, head) and loop over dv tiles
  (BLOCK_DV wide), so a wide dv costs iterations rather than registers / shared memory (a wide dk still costs both).
Both state kernels share one body (`_sweep_states`): the forward's states sum k_j v_j^T counting the writer's own
decay (INCLUSIVE), the backward's sum q_i dnum_i^T without it, scaled by dden_i in the normaliser state.
Decay gradient. log M_ij is the sum of a_t over the path {j..i-1} (j < i) or {i+1..j} (j > i), so with
W_ij = dS_ij S_ij, dL/da_t = sum of W_ij over the pairs whose path contains t:
    da_t = sum_{j <= t < i} W_ij + sum_{i < t <= j} W_ij = sum_{m > t} gP_m + sum_{m >= t} gQ_m,
    gP_m = sum_{j<m} W_mj - sum_{i>m} W_im,   gQ_m = sum_{i<m} W_im - sum_{j>m} W_mj
(gP is d/dP_m of the lower triangle, gQ d/dQ_m of the upper one; P, Q the exclusive / inclusive prefix sums).
Row sums of W are q_m . dq_m and column sums k_m . dk_m, restricted to one triangle: each program emits, for its
chunk's tokens, q . dq and k . dk of each inter-chunk part (signed into gP / gQ) and the intra-chunk row / column
sums of W split by triangle; the launcher adds the two kernels' rows and takes one reverse cumsum over L (of
gradients, not of exponents, so a long sum is harmless). The diagonal (M_ii = 1) has no decay gradient.

fp32 inputs use IEEE fp32 dots (a GPU would otherwise use TF32, about 1e-3 relative error); fp16 / bf16 inputs use
the default (TF32 on the GPU): their own rounding is of that order. fp64 inputs (gradcheck) compute in fp64: the
compute dtype is the log decays' dtype, fp32 unless the inputs are fp64.

GPU status: verified under TRITON_INTERPRET=1 only (no GPU in the sessions that wrote them) and compiled with
triton.compile for every target (test_kernels_aot.py; shared memory per kernel in the manifest). Not tuned: block
sizes and num_warps are rules of thumb, to be timed with benchmarks/kernels_gpu.py.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import triton
import triton.language as tl

from lion_export.kernels.aot.specs import (KernelConfig, KernelSpec, ProblemShape, ScalarArg, TensorArg, dv_tiles,
                                          padded_head_dim)

#: head dims the kernels take (padded to a power of two >= 16 inside, masked)
MAX_HEAD_DIM = 128
#: chunk sizes the kernels take: powers of two, so a chunk is one tile (and c x c dots are >= 16 x 16)
CHUNK_SIZES = (16, 32, 64, 128)
#: widest dv tile a chunk program holds at once (the backward loops over tiles of this width)
_MAX_BLOCK_DV = 64
#: state tiles are at most this wide in dk and dv: more, smaller sweeps keep more SMs busy during the one chain
_STATE_BLOCK = 32
_STATE_WARPS = 4
_NUM_STAGES = 1
#: CUDA's limit on grid y: the chunk kernels put B * H there
_MAX_GRID_Y = 65535


@triton.jit
def _chunk_sums(a_ptr, start, L, CHUNK: tl.constexpr):
    """The chunk's log-decay sums (module docstring, "Exponents"), all <= 0: excl, incl, rev_excl, rev_incl
    (CHUNK,) and the chunk total."""
    t = tl.arange(0, CHUNK)
    a = tl.load(a_ptr + start + t, mask=start + t < L, other=0.0)
    incl = tl.cumsum(a, 0)
    rev_incl = tl.cumsum(a, 0, reverse=True)
    # rounding may leave a difference a hair above 0 (a parallel scan is not monotone bit for bit): clamp it
    excl = tl.minimum(incl - a, 0.0)
    rev_excl = tl.minimum(rev_incl - a, 0.0)
    return excl, incl, rev_excl, rev_incl, tl.sum(a, 0)


@triton.jit
def _chunk_mask(a_ptr, start, L, CHUNK: tl.constexpr):
    """The (CHUNK, CHUNK) intra-chunk mask M: [i, j] = exp(sum_{j <= t < i} a_t) below the diagonal,
    exp(sum_{i < t <= j} a_t) above it, 1 on it. Each exponent is a direct sum over its own span (row i of a
    masked copy of a, cumulated along t), not a difference of the chunk's prefix sums: saturated gates give
    a_t ~ -60, prefix sums of -1000 and more within a chunk, and their difference would bury the small
    exponents of the weights that matter under fp32 rounding."""
    t = tl.arange(0, CHUNK)
    a = tl.load(a_ptr + start + t, mask=start + t < L, other=0.0)
    row = t[:, None]
    col = t[None, :]
    lower = tl.cumsum(tl.where(col < row, a[None, :], 0.0), 1, reverse=True)    # [i, j] = sum_{j <= t < i} a_t
    upper = tl.cumsum(tl.where(col > row, a[None, :], 0.0), 1)                  # [i, j] = sum_{i < t <= j} a_t
    return tl.exp(tl.minimum(tl.where(col < row, lower, tl.where(col > row, upper, 0.0)), 0.0))


@triton.jit
def _chunk_frame(L, DK: tl.constexpr, BLOCK_DK: tl.constexpr, CHUNK: tl.constexpr):
    """Where a chunk program (grid (chunks, B*H, ...)) works: its head bh, its chunk's first token, token offsets
    and in-sequence mask, the (CHUNK, BLOCK_DK) offsets and mask of its q / k rows, and the offsets (in units of
    DK) of the left and right states entering chunk n in a (2, B*H, N, DK, ...) buffer."""
    n = tl.program_id(0)
    bh = tl.program_id(1).to(tl.int64)
    n_chunks = tl.cdiv(L, CHUNK)
    start = n * CHUNK
    t = tl.arange(0, CHUNK)
    in_seq = start + t < L
    tokens = bh * L + start + t
    cols_k = tl.arange(0, BLOCK_DK)
    in_k = in_seq[:, None] & (cols_k[None, :] < DK)
    rows_k = tokens[:, None] * DK + cols_k[None, :]
    left = (bh * n_chunks + n) * DK
    right = ((tl.num_programs(1) + bh) * n_chunks + n) * DK
    return bh, start, t, in_seq, tokens, cols_k, in_k, rows_k, left, right


@triton.jit
def _load_dv_tile(v, dnum, states, tokens, in_seq, cols_k, left, right, v0, DK: tl.constexpr, DV: tl.constexpr,
                  BLOCK_DV: tl.constexpr, compute: tl.constexpr):
    """The backward's dv tile starting at v0: v and dnum rows (CHUNK, BLOCK_DV), the left and right states'
    (BLOCK_DK, BLOCK_DV) tiles, and the rows' offsets and mask (to store dv)."""
    cols_v = v0 + tl.arange(0, BLOCK_DV)
    in_v = in_seq[:, None] & (cols_v[None, :] < DV)
    rows_v = tokens[:, None] * DV + cols_v[None, :]
    state_offsets = cols_k[:, None] * DV + cols_v[None, :]
    state_mask = (cols_k[:, None] < DK) & (cols_v[None, :] < DV)
    v_t = tl.load(v + rows_v, mask=in_v, other=0.0).to(compute)
    dnum_t = tl.load(dnum + rows_v, mask=in_v, other=0.0)
    state_left = tl.load(states + left * DV + state_offsets, mask=state_mask, other=0.0)
    state_right = tl.load(states + right * DV + state_offsets, mask=state_mask, other=0.0)
    return v_t, dnum_t, state_left, state_right, rows_v, in_v


@triton.jit
def _sweep_states(x, y, s, log_decay, L, states, norms,
                  DX: tl.constexpr, DY: tl.constexpr, BLOCK_DX: tl.constexpr, BLOCK_DY: tl.constexpr,
                  CHUNK: tl.constexpr, INCLUSIVE: tl.constexpr, NORM: tl.constexpr, SCALED: tl.constexpr,
                  IEEE: tl.constexpr):
    """One program: one head, one (BLOCK_DX, BLOCK_DY) tile of the state, one direction (program_id(2): 0 carries
    chunks left to right, 1 right to left). Stores the state entering each chunk, then adds the chunk:
        state <- exp(total) state + sum_t exp(w_t) x_t y_t^T,   norm <- exp(total) norm + sum_t exp(w_t) x_t s_t
    with w_t the path from t to the chunk's far edge, counting t's own decay when INCLUSIVE; s_t = 1 unless SCALED.
    """
    bh = tl.program_id(0).to(tl.int64)
    heads = tl.num_programs(0)
    tiles_y = tl.cdiv(DY, BLOCK_DY)
    tile_x = tl.program_id(1) // tiles_y
    tile_y = tl.program_id(1) % tiles_y
    backward = tl.program_id(2)
    compute: tl.constexpr = log_decay.dtype.element_ty
    precision: tl.constexpr = "ieee" if IEEE else "tf32"
    n_chunks = tl.cdiv(L, CHUNK)
    t = tl.arange(0, CHUNK)
    cols_x = tile_x * BLOCK_DX + tl.arange(0, BLOCK_DX)
    cols_y = tile_y * BLOCK_DY + tl.arange(0, BLOCK_DY)
    x += bh * L * DX
    y += bh * L * DY
    s += bh * L
    log_decay += bh * L
    states += (backward * heads + bh) * n_chunks * DX * DY
    norms += (backward * heads + bh) * n_chunks * DX
    state_offsets = cols_x[:, None] * DY + cols_y[None, :]
    state_mask = (cols_x[:, None] < DX) & (cols_y[None, :] < DY)

    state = tl.zeros((BLOCK_DX, BLOCK_DY), dtype=compute)
    norm = tl.zeros((BLOCK_DX,), dtype=compute)
    for step in range(0, n_chunks):
        n = step + backward * (n_chunks - 1 - 2 * step)         # step, or n_chunks - 1 - step
        start = n * CHUNK
        # int64: n * DX * DY passes 2^31 from L ~ 2M tokens at chunk 16 and head dim 128
        tl.store(states + n.to(tl.int64) * DX * DY + state_offsets, state, mask=state_mask)
        if NORM:
            if tile_y == 0:
                tl.store(norms + n * DX + cols_x, norm, mask=cols_x < DX)
        in_seq = start + t < L
        x_c = tl.load(x + (start + t)[:, None] * DX + cols_x[None, :], mask=in_seq[:, None] & (cols_x[None, :] < DX),
                      other=0.0).to(compute)
        y_c = tl.load(y + (start + t)[:, None] * DY + cols_y[None, :], mask=in_seq[:, None] & (cols_y[None, :] < DY),
                      other=0.0).to(compute)
        excl, incl, rev_excl, rev_incl, total = _chunk_sums(log_decay, start, L, CHUNK)
        if INCLUSIVE:
            write = tl.where(backward == 0, rev_incl, incl)
        else:
            write = tl.where(backward == 0, rev_excl, excl)
        x_w = x_c * tl.exp(write)[:, None]
        decay = tl.exp(total)
        state = state * decay + tl.dot(tl.trans(x_w), y_c, input_precision=precision)
        if NORM:
            if SCALED:
                x_w = x_w * tl.load(s + start + t, mask=in_seq, other=0.0)[:, None]
            norm = norm * decay + tl.sum(x_w, 0)


@triton.jit
def _lion_chunked_states(k, v, log_decay, L, states, norms,
                         DK: tl.constexpr, DV: tl.constexpr, BLOCK_DK: tl.constexpr, BLOCK_DV: tl.constexpr,
                         CHUNK: tl.constexpr, NORMALIZE: tl.constexpr, IEEE: tl.constexpr):
    """Phase 1 of the forward: left[n], right[n] (sum of decayed k v^T) and the normaliser states."""
    _sweep_states(k, v, log_decay, log_decay, L, states, norms, DK, DV, BLOCK_DK, BLOCK_DV, CHUNK,
                  INCLUSIVE=True, NORM=NORMALIZE, SCALED=False, IEEE=IEEE)


@triton.jit
def _lion_chunked_bwd_states(q, dnum, dden, log_decay, L, states, norms,
                             DK: tl.constexpr, DV: tl.constexpr, BLOCK_DK: tl.constexpr, BLOCK_DV: tl.constexpr,
                             CHUNK: tl.constexpr, NORMALIZE: tl.constexpr, IEEE: tl.constexpr):
    """The queries' states for dk, dv: G (sum of decayed q dnum^T) and g (sum of decayed q dden)."""
    _sweep_states(q, dnum, dden, log_decay, L, states, norms, DK, DV, BLOCK_DK, BLOCK_DV, CHUNK,
                  INCLUSIVE=False, NORM=NORMALIZE, SCALED=True, IEEE=IEEE)


@triton.jit
def _lion_chunked_out(q, k, v, log_decay, states, norms, L, y, den,
                      DK: tl.constexpr, DV: tl.constexpr, BLOCK_DK: tl.constexpr, BLOCK_DV: tl.constexpr,
                      CHUNK: tl.constexpr, NORMALIZE: tl.constexpr, EPS: tl.constexpr, IEEE: tl.constexpr):
    """Phase 2 of the forward: one chunk, one head, one dv tile."""
    bh, start, t, in_seq, tokens, cols_k, in_k, rows_k, left, right = _chunk_frame(L, DK, BLOCK_DK, CHUNK)
    tile = tl.program_id(2)
    compute: tl.constexpr = log_decay.dtype.element_ty
    precision: tl.constexpr = "ieee" if IEEE else "tf32"
    cols_v = tile * BLOCK_DV + tl.arange(0, BLOCK_DV)
    in_v = in_seq[:, None] & (cols_v[None, :] < DV)
    rows_v = tokens[:, None] * DV + cols_v[None, :]
    state_offsets = cols_k[:, None] * DV + cols_v[None, :]
    state_mask = (cols_k[:, None] < DK) & (cols_v[None, :] < DV)

    q_c = tl.load(q + rows_k, mask=in_k, other=0.0).to(compute)
    k_c = tl.load(k + rows_k, mask=in_k, other=0.0).to(compute)
    v_c = tl.load(v + rows_v, mask=in_v, other=0.0).to(compute)
    excl, _, rev_excl, _, _ = _chunk_sums(log_decay + bh * L, start, L, CHUNK)
    mask = _chunk_mask(log_decay + bh * L, start, L, CHUNK)
    scores = tl.dot(q_c, tl.trans(k_c), input_precision=precision) * mask
    q_left = q_c * tl.exp(excl)[:, None]
    q_right = q_c * tl.exp(rev_excl)[:, None]
    state_left = tl.load(states + left * DV + state_offsets, mask=state_mask, other=0.0)
    state_right = tl.load(states + right * DV + state_offsets, mask=state_mask, other=0.0)
    num = tl.dot(scores, v_c, input_precision=precision)
    num += tl.dot(q_left, state_left, input_precision=precision)
    num += tl.dot(q_right, state_right, input_precision=precision)
    if NORMALIZE:
        norm_left = tl.load(norms + left + cols_k, mask=cols_k < DK, other=0.0)
        norm_right = tl.load(norms + right + cols_k, mask=cols_k < DK, other=0.0)
        den_c = tl.sum(scores, 1) + tl.sum(q_left * norm_left[None, :] + q_right * norm_right[None, :], 1)
        if tile == 0:
            tl.store(den + tokens, den_c, mask=in_seq)
        num = num / (den_c + EPS)[:, None]
    tl.store(y + rows_v, num.to(y.dtype.element_ty), mask=in_v)


@triton.jit
def _lion_chunked_bwd_dq(q, k, v, log_decay, dnum, dden, states, norms, L, dq, g,
                         DK: tl.constexpr, DV: tl.constexpr, BLOCK_DK: tl.constexpr, BLOCK_DV: tl.constexpr,
                         CHUNK: tl.constexpr, NORMALIZE: tl.constexpr, IEEE: tl.constexpr):
    """dq of one chunk from the forward's states, and the decay gradient's row parts: the inter-chunk q . dq and
    the intra-chunk row and column sums of W (the dk / dv kernel adds only its inter-chunk k . dk)."""
    bh, start, t, in_seq, tokens, cols_k, in_k, rows_k, left, right = _chunk_frame(L, DK, BLOCK_DK, CHUNK)
    compute: tl.constexpr = log_decay.dtype.element_ty
    precision: tl.constexpr = "ieee" if IEEE else "tf32"
    row = t[:, None]
    col = t[None, :]

    q_c = tl.load(q + rows_k, mask=in_k, other=0.0).to(compute)
    k_c = tl.load(k + rows_k, mask=in_k, other=0.0).to(compute)
    grad_scores = tl.zeros((CHUNK, CHUNK), dtype=compute)
    dq_left = tl.zeros((CHUNK, BLOCK_DK), dtype=compute)
    dq_right = tl.zeros((CHUNK, BLOCK_DK), dtype=compute)
    for v0 in tl.static_range(0, DV, BLOCK_DV):
        v_t, dnum_t, state_left, state_right, _, _ = _load_dv_tile(v, dnum, states, tokens, in_seq, cols_k, left,
                                                                   right, v0, DK, DV, BLOCK_DV, compute)
        grad_scores += tl.dot(dnum_t, tl.trans(v_t), input_precision=precision)
        dq_left += tl.dot(dnum_t, tl.trans(state_left), input_precision=precision)
        dq_right += tl.dot(dnum_t, tl.trans(state_right), input_precision=precision)
    if NORMALIZE:
        dden_c = tl.load(dden + tokens, mask=in_seq, other=0.0)
        grad_scores += dden_c[:, None]
        dq_left += dden_c[:, None] * tl.load(norms + left + cols_k, mask=cols_k < DK, other=0.0)[None, :]
        dq_right += dden_c[:, None] * tl.load(norms + right + cols_k, mask=cols_k < DK, other=0.0)[None, :]
    excl, _, rev_excl, _, _ = _chunk_sums(log_decay + bh * L, start, L, CHUNK)
    grad_scores = grad_scores * _chunk_mask(log_decay + bh * L, start, L, CHUNK)     # dS_ij M_ij
    dq_left = dq_left * tl.exp(excl)[:, None]
    dq_right = dq_right * tl.exp(rev_excl)[:, None]
    tl.store(dq + rows_k, tl.dot(grad_scores, k_c, input_precision=precision) + dq_left + dq_right, mask=in_k)

    w = grad_scores * tl.dot(q_c, tl.trans(k_c), input_precision=precision)   # W = dS * S
    w_lower = tl.where(col < row, w, 0.0)
    w_upper = tl.where(col > row, w, 0.0)
    g_lower = tl.sum(q_c * dq_left, 1) + tl.sum(w_lower, 1) - tl.sum(w_lower, 0)
    g_upper = -tl.sum(q_c * dq_right, 1) + tl.sum(w_upper, 0) - tl.sum(w_upper, 1)
    tl.store(g + tokens + bh * L, g_lower, mask=in_seq)          # g is (B*H, 2, L): row 2 bh, then 2 bh + 1
    tl.store(g + tokens + (bh + 1) * L, g_upper, mask=in_seq)


@triton.jit
def _lion_chunked_bwd_dkdv(q, k, v, log_decay, dnum, dden, states, norms, L, dk, dv, g,
                           DK: tl.constexpr, DV: tl.constexpr, BLOCK_DK: tl.constexpr, BLOCK_DV: tl.constexpr,
                           CHUNK: tl.constexpr, NORMALIZE: tl.constexpr, IEEE: tl.constexpr):
    """dk and dv of one chunk from the queries' states G, g, and the decay gradient's inter-chunk k . dk."""
    bh, start, t, in_seq, tokens, cols_k, in_k, rows_k, left, right = _chunk_frame(L, DK, BLOCK_DK, CHUNK)
    compute: tl.constexpr = log_decay.dtype.element_ty
    precision: tl.constexpr = "ieee" if IEEE else "tf32"

    q_c = tl.load(q + rows_k, mask=in_k, other=0.0).to(compute)
    k_c = tl.load(k + rows_k, mask=in_k, other=0.0).to(compute)
    _, incl, _, rev_incl, _ = _chunk_sums(log_decay + bh * L, start, L, CHUNK)
    mask = _chunk_mask(log_decay + bh * L, start, L, CHUNK)
    # queries of earlier chunks reach key j through its own decay (incl_j); later ones through rev_incl_j
    read_left = tl.exp(incl)[:, None]
    read_right = tl.exp(rev_incl)[:, None]
    scores_t = tl.trans(tl.dot(q_c, tl.trans(k_c), input_precision=precision) * mask)    # S^T
    grad_scores = tl.zeros((CHUNK, CHUNK), dtype=compute)
    dk_left = tl.zeros((CHUNK, BLOCK_DK), dtype=compute)
    dk_right = tl.zeros((CHUNK, BLOCK_DK), dtype=compute)
    for v0 in tl.static_range(0, DV, BLOCK_DV):
        v_t, dnum_t, state_left, state_right, rows_v, in_v = _load_dv_tile(v, dnum, states, tokens, in_seq, cols_k,
                                                                           left, right, v0, DK, DV, BLOCK_DV, compute)
        grad_scores += tl.dot(dnum_t, tl.trans(v_t), input_precision=precision)
        dk_left += tl.dot(v_t, tl.trans(state_left), input_precision=precision)
        dk_right += tl.dot(v_t, tl.trans(state_right), input_precision=precision)
        # dv_j = sum_i S_ij dnum_i (intra) + exp(incl_j) G_left^T k_j + exp(rev_incl_j) G_right^T k_j
        dv_t = tl.dot(scores_t, dnum_t, input_precision=precision)
        dv_t += tl.dot(k_c * read_left, state_left, input_precision=precision)
        dv_t += tl.dot(k_c * read_right, state_right, input_precision=precision)
        tl.store(dv + rows_v, dv_t, mask=in_v)
    if NORMALIZE:
        grad_scores += tl.load(dden + tokens, mask=in_seq, other=0.0)[:, None]
        dk_left += tl.load(norms + left + cols_k, mask=cols_k < DK, other=0.0)[None, :]
        dk_right += tl.load(norms + right + cols_k, mask=cols_k < DK, other=0.0)[None, :]
    grad_scores = grad_scores * mask
    dk_left = dk_left * read_left
    dk_right = dk_right * read_right
    tl.store(dk + rows_k, tl.dot(tl.trans(grad_scores), q_c, input_precision=precision) + dk_left + dk_right,
             mask=in_k)
    # a key's inter-chunk k . dk is a column sum of W: queries after it (lower triangle) into gP, before into gQ
    tl.store(g + tokens + bh * L, -tl.sum(k_c * dk_right, 1), mask=in_seq)
    tl.store(g + tokens + (bh + 1) * L, tl.sum(k_c * dk_left, 1), mask=in_seq)


def _wide(dk: int, dv: int) -> bool:
    """Head dims above 64: the chunk kernels then use narrower tiles (and fp32 a shorter chunk) to fit."""
    return max(padded_head_dim(dk), padded_head_dim(dv)) > 64


def _block_dv(dk: int, dv: int) -> int:
    """The chunk kernels' dv tile. Compiled for sm_86 (99 KiB of shared memory per block), head dim 128 with 64-wide
    tiles needs 120 KiB (fp32 forward, chunk 64) and 128 KiB (bf16 / fp32 backward); with 32-wide tiles, and chunk 32
    for fp32, the widest kernel needs 72 KiB (benchmarks/kernel_resources.py measures every kernel and target)."""
    return 32 if _wide(dk, dv) else min(padded_head_dim(dv), _MAX_BLOCK_DV)


def _state_blocks(dk: int, dv: int) -> tuple[int, int]:
    return min(padded_head_dim(dk), _STATE_BLOCK), min(padded_head_dim(dv), _STATE_BLOCK)


def _num_warps(dk: int, dv: int, chunk_size: int) -> int:
    """4 warps for tiles up to 64 wide, 8 beyond (not tuned on a GPU yet)."""
    return 4 if max(padded_head_dim(dk), padded_head_dim(dv), chunk_size) <= 64 else 8


def _n_chunks(length: int, chunk_size: int) -> int:
    return -(-length // chunk_size)


def _states_grid(dk: int, dv: int) -> Callable[[ProblemShape], tuple[int, int, int]]:
    block_dk, block_dv = _state_blocks(dk, dv)
    return lambda s: (s.batch * s.heads, dv_tiles(s.dk, block_dk) * dv_tiles(s.dv, block_dv), 2)


def _chunk_grid(chunk_size: int, block_dv: int | None) -> Callable[[ProblemShape], tuple[int, int, int]]:
    """(chunks, B * H, dv tiles); one dv tile (z = 1) for the backward's chunk kernels (block_dv None)."""
    return lambda s: (_n_chunks(s.length, chunk_size), s.batch * s.heads,
                      1 if block_dv is None else dv_tiles(s.dv, block_dv))


def check_problem(dk: int, dv: int, chunk_size: int) -> None:
    """The head dims and chunk sizes the kernels are written for; a clear ValueError otherwise."""
    if not (1 <= dk <= MAX_HEAD_DIM and 1 <= dv <= MAX_HEAD_DIM):
        raise ValueError(f"the chunked Triton kernels support head dims 1..{MAX_HEAD_DIM}, got dk={dk}, dv={dv}")
    if chunk_size not in CHUNK_SIZES:
        raise ValueError(f"the chunked Triton kernels need chunk_size in {CHUNK_SIZES}, got {chunk_size}")


def check_heads(batch: int, heads: int) -> None:
    """B * H is a grid dimension of its own (CUDA's y limit)."""
    if batch * heads > _MAX_GRID_Y:
        raise ValueError(f"the chunked Triton kernels take B * H <= {_MAX_GRID_Y}, got {batch} * {heads}")


def kernel_chunk_size(chunk_size: int, dk: int, dv: int, ieee: bool) -> int:
    """The chunk the kernels run for a requested chunk size: the smallest of CHUNK_SIZES at or above it (capped at
    the largest), and at most 32 for fp32 / fp64 (`ieee`) at head dims above 64 (shared memory, `_block_dv`). The
    result does not depend on the chunk, so any positive request is honoured this way, and a model configured for
    the PyTorch form (say chunk 8) trains unchanged on the kernels."""
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    chunk = min(CHUNK_SIZES[-1], max(CHUNK_SIZES[0], triton.next_power_of_2(chunk_size)))
    return min(chunk, 32) if ieee and _wide(dk, dv) else chunk


def ieee_dots(dtype: torch.dtype) -> bool:
    """fp32 / fp64 inputs get IEEE dots (and the shorter chunk at wide heads); fp16 / bf16 the default (TF32)."""
    return dtype in (torch.float32, torch.float64)


def _state_constexprs(dk: int, dv: int, chunk_size: int, normalize: bool, ieee: bool) -> dict[str, int | bool]:
    block_dk, block_dv = _state_blocks(dk, dv)
    return {"DK": dk, "DV": dv, "BLOCK_DK": block_dk, "BLOCK_DV": block_dv, "CHUNK": chunk_size,
            "NORMALIZE": bool(normalize), "IEEE": bool(ieee)}


def _chunk_constexprs(dk: int, dv: int, chunk_size: int, normalize: bool, ieee: bool,
                      eps: float | None = None) -> dict[str, int | float | bool]:
    """The chunk kernels' constexprs, in parameter order; `eps` only for the forward's output kernel."""
    meta: dict[str, int | float | bool] = {"DK": dk, "DV": dv, "BLOCK_DK": padded_head_dim(dk),
                                           "BLOCK_DV": _block_dv(dk, dv), "CHUNK": chunk_size,
                                           "NORMALIZE": bool(normalize)}
    if eps is not None:
        meta["EPS"] = float(eps)
    return {**meta, "IEEE": bool(ieee)}


def _key_states(k: torch.Tensor, v: torch.Tensor, a: torch.Tensor, chunk_size: int, normalize: bool,
                ieee: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Launch `_lion_chunked_states`: the states (2, B, H, N, dk, dv) and norms (2, B, H, N, dk) entering every
    chunk, in the compute dtype. The forward reads them, and the backward recomputes them rather than keeping them."""
    batch, heads, length, dk = k.shape
    dv = v.shape[-1]
    n_chunks = _n_chunks(length, chunk_size)
    states = torch.empty(2, batch, heads, n_chunks, dk, dv, dtype=a.dtype, device=k.device)
    norms = torch.empty(2, batch, heads, n_chunks, dk, dtype=a.dtype, device=k.device)
    _lion_chunked_states[_states_grid(dk, dv)(ProblemShape(batch, heads, length, dk, dv))](
        k, v, a, length, states, norms, **_state_constexprs(dk, dv, chunk_size, normalize, ieee),
        num_warps=_STATE_WARPS, num_stages=_NUM_STAGES)
    return states, norms


def chunked_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, a: torch.Tensor, *, normalize: bool,
                    eps: float, chunk_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Launch the forward on contiguous, validated inputs: y (q's dtype) and den (B, H, L), the complete normaliser
    when normalising (unwritten otherwise). a's dtype is the compute dtype (fp32, or fp64 for fp64 inputs)."""
    batch, heads, length, dk = q.shape
    dv = v.shape[-1]
    y = torch.empty_like(v)
    den = torch.empty(batch, heads, length, dtype=a.dtype, device=q.device)
    if y.numel():
        shape = ProblemShape(batch, heads, length, dk, dv)
        ieee = ieee_dots(q.dtype)
        states, norms = _key_states(k, v, a, chunk_size, normalize, ieee)
        _lion_chunked_out[_chunk_grid(chunk_size, _block_dv(dk, dv))(shape)](
            q, k, v, a, states, norms, length, y, den, **_chunk_constexprs(dk, dv, chunk_size, normalize, ieee, eps),
            num_warps=_num_warps(dk, dv, chunk_size), num_stages=_NUM_STAGES)
    return y, den


def chunked_backward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, a: torch.Tensor, dy: torch.Tensor,
                     y: torch.Tensor | None, den: torch.Tensor | None, *, normalize: bool, eps: float,
                     chunk_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """dq, dk, dv (in the compute dtype) and da from the saved inputs and, when normalising, the forward's y and den.

    Four launches: the forward's states (recomputed), the queries' states, then dq and dk / dv per chunk.
    """
    batch, heads, length, dk = q.shape
    dv = v.shape[-1]
    compute = a.dtype
    if normalize:
        scale = 1.0 / (den + eps)
        dnum = (dy.to(compute) * scale[..., None]).contiguous()
        dden = (-(dy.to(compute) * y.to(compute)).sum(-1) * scale).contiguous()
    else:
        dnum, dden = dy.to(compute).contiguous(), a        # dden is not read
    dq = torch.empty(batch, heads, length, dk, dtype=compute, device=q.device)
    dk_out = torch.empty_like(dq)
    dv_out = torch.empty(batch, heads, length, dv, dtype=compute, device=q.device)
    g = torch.empty(2, batch * heads, 2, length, dtype=compute, device=q.device)   # (kernel, B*H, [gP, gQ], L)
    if dq.numel() and dv_out.numel():
        shape = ProblemShape(batch, heads, length, dk, dv)
        ieee = ieee_dots(q.dtype)
        chunk_meta = _chunk_constexprs(dk, dv, chunk_size, normalize, ieee)
        launch = {"num_warps": _num_warps(dk, dv, chunk_size), "num_stages": _NUM_STAGES}
        grid = _chunk_grid(chunk_size, None)(shape)
        states, norms = _key_states(k, v, a, chunk_size, normalize, ieee)
        _lion_chunked_bwd_dq[grid](q, k, v, a, dnum, dden, states, norms, length, dq, g[0], **chunk_meta, **launch)
        _lion_chunked_bwd_states[_states_grid(dk, dv)(shape)](
            q, dnum, dden, a, length, states, norms, **_state_constexprs(dk, dv, chunk_size, normalize, ieee),
            num_warps=_STATE_WARPS, num_stages=_NUM_STAGES)
        _lion_chunked_bwd_dkdv[grid](q, k, v, a, dnum, dden, states, norms, length, dk_out, dv_out, g[1],
                                     **chunk_meta, **launch)
    else:
        for part in (dq, dk_out, dv_out, g):
            part.zero_()
    g_lower, g_upper = g.sum(0).unbind(1)          # gP, gQ: (B*H, L)
    # da_t = sum_{m > t} gP_m + sum_{m >= t} gQ_m: one reverse cumsum of gQ plus gP shifted one token left
    shifted = torch.cat([g_lower[:, 1:], torch.zeros_like(g_lower[:, :1])], dim=1)
    da = (g_upper + shifted).flip(1).cumsum(1).flip(1)
    return dq, dk_out, dv_out, da.view(batch, heads, length)


def _tensor_arg(config: KernelConfig, chunk: int, name: str, role: str) -> TensorArg:
    """A kernel argument by its launcher-facing name. States and norms come in two sets: the keys' (the forward's,
    `states` / `norms`) and the queries' (the backward's, `q_states` / `q_norms`), each an fp32 workspace of
    2 N dk (dv + 1) floats per head, N = ceil(L / CHUNK). decay_grad_q / _k are the two chunk kernels' rows of gP, gQ.
    """
    n = f"ceil(L / {chunk})"
    qk = (lambda s: (s.batch, s.heads, s.length, s.dk)), "(B, H, L, dk)"
    values = (lambda s: (s.batch, s.heads, s.length, s.dv)), "(B, H, L, dv)"
    rows = (lambda s: (s.batch, s.heads, s.length)), "(B, H, L)"
    states = (lambda s: (2, s.batch, s.heads, _n_chunks(s.length, chunk), s.dk, s.dv)), f"(2, B, H, {n}, dk, dv)"
    norms = (lambda s: (2, s.batch, s.heads, _n_chunks(s.length, chunk), s.dk)), f"(2, B, H, {n}, dk)"
    decay_grad = (lambda s: (s.batch * s.heads, 2, s.length)), "(B * H, 2, L)"
    layouts = {"q": qk, "k": qk, "v": values, "y": values, "log_decay": rows, "den": rows, "dnum": values,
               "dden": rows, "dq": qk, "dk": qk, "dv": values, "states": states, "norms": norms, "q_states": states,
               "q_norms": norms, "decay_grad_q": decay_grad, "decay_grad_k": decay_grad}
    shape, formula = layouts[name]
    return TensorArg(name, role, config.dtype if name in ("q", "k", "v", "y") else "fp32", shape, formula)


def _spec(config: KernelConfig, name: str, fn, inputs: tuple[str, ...], outputs: tuple[str, ...], *,
          state_kernel: bool, runs_after: tuple[str, ...] = (), eps: bool = False) -> KernelSpec:
    """One kernel's AOT spec: its inputs, L, its outputs (by `_tensor_arg` names), constexprs and grid. Of the
    chunk kernels, the forward's (`eps`) splits dv into tiles, the backward's loop over them."""
    dk, dv, ieee = config.dk, config.dv, config.dtype == "fp32"
    chunk = kernel_chunk_size(config.chunk_size, dk, dv, ieee)
    args = (*(_tensor_arg(config, chunk, a, "input") for a in inputs), ScalarArg("L", lambda s: s.length, "L"),
            *(_tensor_arg(config, chunk, a, "output") for a in outputs))
    if state_kernel:
        block_dk, block_dv = _state_blocks(dk, dv)
        return KernelSpec(name=name, fn=fn, args=args,
                          constexprs=_state_constexprs(dk, dv, chunk, config.normalize, ieee), num_warps=_STATE_WARPS,
                          grid=_states_grid(dk, dv), num_stages=_NUM_STAGES, runs_after=runs_after,
                          grid_formula=("B * H", f"ceil(dk / {block_dk}) * ceil(dv / {block_dv})", "2"))
    block_dv = _block_dv(dk, dv) if eps else None
    return KernelSpec(name=name, fn=fn, args=args,
                      constexprs=_chunk_constexprs(dk, dv, chunk, config.normalize, ieee, config.eps if eps else None),
                      num_warps=_num_warps(dk, dv, chunk), grid=_chunk_grid(chunk, block_dv),
                      grid_formula=(f"ceil(L / {chunk})", "B * H", f"ceil(dv / {block_dv})" if eps else "1"),
                      num_stages=_NUM_STAGES, runs_after=runs_after)


def aot_specs(config: KernelConfig) -> list[KernelSpec]:
    """The forward as an AOT launcher runs it: two kernels, in this order, sharing `states` and `norms` by name:
    lion_chunked_states(k, v, log_decay, L, states, norms), then
    lion_chunked_out(q, k, v, log_decay, states, norms, L, y, den); den is the fp32 normaliser (written when
    normalising). The training-only kernels are in `training_specs`. The chunk is `kernel_chunk_size` of the
    config's (the CHUNK constexpr says which).
    """
    check_problem(config.dk, config.dv, config.chunk_size)
    return [
        _spec(config, "lion_chunked_states", _lion_chunked_states, ("k", "v", "log_decay"), ("states", "norms"),
              state_kernel=True),
        _spec(config, "lion_chunked_out", _lion_chunked_out, ("q", "k", "v", "log_decay", "states", "norms"),
              ("y", "den"), state_kernel=False, runs_after=("lion_chunked_states",), eps=True),
    ]


def training_specs(config: KernelConfig) -> list[KernelSpec]:
    """The backward's kernels, after the forward's states (launched again by the backward): dnum and dden come from
    PyTorch (`chunked_backward`). Described so that compiling them for a target shows what they need there."""
    check_problem(config.dk, config.dv, config.chunk_size)
    chunk_inputs = ("q", "k", "v", "log_decay", "dnum", "dden")
    return [
        _spec(config, "lion_chunked_bwd_dq", _lion_chunked_bwd_dq, (*chunk_inputs, "states", "norms"),
              ("dq", "decay_grad_q"), state_kernel=False, runs_after=("lion_chunked_states",)),
        _spec(config, "lion_chunked_bwd_states", _lion_chunked_bwd_states, ("q", "dnum", "dden", "log_decay"),
              ("q_states", "q_norms"), state_kernel=True),
        _spec(config, "lion_chunked_bwd_dkdv", _lion_chunked_bwd_dkdv, (*chunk_inputs, "q_states", "q_norms"),
              ("dk", "dv", "decay_grad_k"), state_kernel=False, runs_after=("lion_chunked_bwd_states",)),
    ]
