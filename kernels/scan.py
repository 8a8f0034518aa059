"""The fused bidirectional selective scan: LION's recurrent form as one Triton kernel (forward only).

One program per (batch*head, dv-tile) keeps the dk x dv-tile state in registers and sweeps the tokens twice
(docs/maths.md, "Form 2: recurrent"):

    forward : Sf_i = lambda_{i-1} Sf_{i-1} + k_i v_i^T,   zf_i = lambda_{i-1} zf_{i-1} + k_i
    backward: Sb_i = lambda_{i+1} Sb_{i+1} + k_i v_i^T,   zb_i = lambda_{i+1} zb_{i+1} + k_i
    y_i = q_i^T (Sf_i + Sb_i - k_i v_i^T) / (q_i^T (zf_i + zb_i - k_i) + eps)      (no division unless normalize)

The forward sweep writes q_i^T Sf_i and q_i^T zf_i to fp32 scratch outputs, O(L dv) per head; the backward sweep adds
its own half and writes y. It reads its state before adding token i (Sb_i - k_i v_i^T = lambda_{i+1} Sb_{i+1}), so
the diagonal is counted once without a subtraction. Nothing of size L x L or L x c ever exists.

This is the kernel the TensorRT plugin launches from PTX, so its parameter list IS the calling convention of
TensorRT's AOT path (input pointers, int32 scalars, output pointers), with every float baked in as a constexpr and
every stride derived from L and the head dims (all tensors contiguous):

    _lion_scan_fwd(q, k, v, log_decay, L, y, num_scratch, den_scratch)
      q, k        (B, H, L, dk)  fp32 | fp16 | bf16
      v           (B, H, L, dv)  same dtype as q
      log_decay   (B, H, L)      fp32, a_i = log(lambda_i) <= 0
      L           int32
      y           (B, H, L, dv)  dtype of q
      num_scratch (B, H, L, dv)  fp32, forward numerators q_i^T Sf_i
      den_scratch (B, H, T, L)   fp32, forward normalisers q_i^T zf_i, one row per dv tile (T = ceil(dv / BLOCK_DV))
                                 so no two programs write the same word; untouched when NORMALIZE is False
      grid (B*H, T, 1), block 32*num_warps threads; shared memory only for Triton's cross-warp reductions
      (a few hundred bytes; the compiled value is in the AOT manifest).
Triton appends two hidden scratch pointers after these; the kernel never reads them, so the AOT build drops them from
the PTX entry (aot/compiler.py) and the compiled entry declares exactly the eight parameters above.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from lion_export.dtypes import KERNEL_DTYPES, torch_dtype
from lion_export.kernels.aot.specs import (KernelConfig, KernelSpec, ProblemShape, dv_tiles, padded_head_dim,
                                          scan_node_arguments)
from lion_export.kernels.launch_inputs import check_kernel_inputs

#: widest dv tile one program holds: a 128 x 32 fp32 state is 32 registers per thread at 4 warps
_MAX_BLOCK_DV = 32
_NUM_WARPS = 4
_NUM_STAGES = 1      # the token loops have no loads Triton would pipeline; the same value for JIT and AOT
_MAX_HEAD_DIM = 256


@triton.jit
def _lion_scan_fwd(q, k, v, log_decay, L, y, num_scratch, den_scratch,
                   DK: tl.constexpr, DV: tl.constexpr, BLOCK_DK: tl.constexpr, BLOCK_DV: tl.constexpr,
                   NORMALIZE: tl.constexpr, EPS: tl.constexpr):
    bh = tl.program_id(0).to(tl.int64)
    tile = tl.program_id(1)
    offs_k = tl.arange(0, BLOCK_DK)
    offs_v = tile * BLOCK_DV + tl.arange(0, BLOCK_DV)
    mask_k = offs_k < DK
    mask_v = offs_v < DV
    # row pointers of this (batch, head): token i sits at + i * DK (q, k) or + i * DV (v, y, num)
    q_row = q + bh * L * DK + offs_k
    k_row = k + bh * L * DK + offs_k
    v_row = v + bh * L * DV + offs_v
    y_row = y + bh * L * DV + offs_v
    num_row = num_scratch + bh * L * DV + offs_v
    a_row = log_decay + bh * L
    den_row = den_scratch + (bh * tl.num_programs(1) + tile) * L

    state = tl.zeros((BLOCK_DK, BLOCK_DV), dtype=tl.float32)
    norm = tl.zeros((BLOCK_DK,), dtype=tl.float32)
    for i in range(0, L):
        # lambda_{i-1} decays the state carried into token i (the state before token 0 is zero anyway)
        lam = tl.exp(tl.load(a_row + i - 1, mask=i > 0, other=0.0))
        q_i = tl.load(q_row + i * DK, mask=mask_k, other=0.0).to(tl.float32)
        k_i = tl.load(k_row + i * DK, mask=mask_k, other=0.0).to(tl.float32)
        v_i = tl.load(v_row + i * DV, mask=mask_v, other=0.0).to(tl.float32)
        state = lam * state + k_i[:, None] * v_i[None, :]
        tl.store(num_row + i * DV, tl.sum(q_i[:, None] * state, axis=0), mask=mask_v)
        if NORMALIZE:
            norm = lam * norm + k_i
            tl.store(den_row + i, tl.sum(q_i * norm, axis=0))

    # the backward sweep reads what other threads of this program stored in the forward sweep
    tl.debug_barrier()

    # The backward sweep reads its state BEFORE adding token i:
    # q_i^T (lambda_{i+1} Sb_{i+1}) = q_i^T (Sb_i - k_i v_i^T), so the diagonal, already in Sf_i, is counted once.
    state = tl.zeros((BLOCK_DK, BLOCK_DV), dtype=tl.float32)
    norm = tl.zeros((BLOCK_DK,), dtype=tl.float32)
    for step in range(0, L):
        i = L - 1 - step
        # lambda_{i+1} decays the state carried into token i from the right
        lam = tl.exp(tl.load(a_row + i + 1, mask=i + 1 < L, other=0.0))
        q_i = tl.load(q_row + i * DK, mask=mask_k, other=0.0).to(tl.float32)
        k_i = tl.load(k_row + i * DK, mask=mask_k, other=0.0).to(tl.float32)
        v_i = tl.load(v_row + i * DV, mask=mask_v, other=0.0).to(tl.float32)
        state = lam * state
        num = tl.sum(q_i[:, None] * state, axis=0) + tl.load(num_row + i * DV, mask=mask_v, other=0.0)
        state += k_i[:, None] * v_i[None, :]
        if NORMALIZE:
            norm = lam * norm
            den = tl.sum(q_i * norm, axis=0) + tl.load(den_row + i)
            norm += k_i
            num = num / (den + EPS)
        tl.store(y_row + i * DV, num.to(y.dtype.element_ty), mask=mask_v)


def _block_dv(dv: int) -> int:
    return min(padded_head_dim(dv), _MAX_BLOCK_DV)


def _grid(shape: ProblemShape) -> tuple[int, int, int]:
    return shape.batch * shape.heads, dv_tiles(shape.dv, _block_dv(shape.dv)), 1


def _constexprs(dk: int, dv: int, normalize: bool, eps: float) -> dict[str, int | float | bool]:
    return {"DK": dk, "DV": dv, "BLOCK_DK": padded_head_dim(dk), "BLOCK_DV": _block_dv(dv),
            "NORMALIZE": bool(normalize), "EPS": float(eps)}


def _check_head_dims(dk: int, dv: int) -> None:
    if not (1 <= dk <= _MAX_HEAD_DIM and 1 <= dv <= _MAX_HEAD_DIM):
        raise ValueError(f"the scan kernel supports head dims 1..{_MAX_HEAD_DIM}, got dk={dk}, dv={dv}")


def lion_scan(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, a: torch.Tensor, *, normalize: bool,
              eps: float) -> torch.Tensor:
    """LION's recurrent form with the fused scan: q, k (B, H, L, dk), v (B, H, L, dv), a (B, H, L) log decays.

    Returns y (B, H, L, dv) in q's dtype, accumulated in fp32. Forward only (no autograd).
    """
    check_kernel_inputs("scan kernel", q, k, v, a, tuple(map(torch_dtype, KERNEL_DTYPES)))
    if a.dtype != torch.float32:
        raise ValueError(f"log decays must be torch.float32, got {a.dtype}")
    batch, heads, length, dk = q.shape
    dv = v.shape[-1]
    _check_head_dims(dk, dv)
    y = torch.empty_like(v, memory_format=torch.contiguous_format)
    if y.numel() == 0:
        return y
    shape = ProblemShape(batch, heads, length, dk, dv)
    scratch = {name: torch.empty(size, dtype=torch.float32, device=q.device)
               for name, size in scratch_shapes(shape).items()}
    launch_scan(q.contiguous(), k.contiguous(), v.contiguous(), a.contiguous(), y, scratch["num_scratch"],
                scratch["den_scratch"], normalize=normalize, eps=eps)
    return y


def scratch_shapes(shape: ProblemShape) -> dict[str, tuple[int, ...]]:
    """The fp32 scratch buffers one launch needs, by argument name (a TensorRT plugin carves them out of its
    workspace instead of allocating)."""
    _check_head_dims(shape.dk, shape.dv)
    return {arg.name: arg.shape(shape) for arg in scan_node_arguments("fp32", _block_dv(shape.dv))
            if arg.name.endswith("_scratch")}


def launch_scan(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, a: torch.Tensor, y: torch.Tensor,
                num_scratch: torch.Tensor, den_scratch: torch.Tensor, *, normalize: bool, eps: float) -> None:
    """Launch the kernel on the current stream into caller-owned buffers, all contiguous and already checked
    (`lion_scan` checks; TensorRT's plugin has its types and shapes fixed by the engine): y and both scratch
    buffers (`scratch_shapes`) are written, nothing is allocated."""
    batch, heads, length, dk = q.shape
    dv = v.shape[-1]
    _lion_scan_fwd[_grid(ProblemShape(batch, heads, length, dk, dv))](
        q, k, v, a, length, y, num_scratch, den_scratch, **_constexprs(dk, dv, normalize, eps),
        num_warps=_NUM_WARPS, num_stages=_NUM_STAGES)


def aot_specs(config: KernelConfig) -> list[KernelSpec]:
    """The scan kernel as TensorRT's AOT path launches it (see the module docstring for the convention)."""
    _check_head_dims(config.dk, config.dv)
    dtype = config.dtype
    args = scan_node_arguments(dtype, _block_dv(config.dv))
    return [KernelSpec(
        name="lion_scan_fwd", fn=_lion_scan_fwd, args=args,
        constexprs=_constexprs(config.dk, config.dv, config.normalize, config.eps),
        num_warps=_NUM_WARPS, num_stages=_NUM_STAGES, grid=_grid,
        grid_formula=("B * H", f"ceil(dv / {_block_dv(config.dv)})", "1"))]
