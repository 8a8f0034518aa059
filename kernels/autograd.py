"""`lion_chunked`: the chunked Triton kernels as a differentiable PyTorch op.

The autograd Function is what lets a model train through the fused kernels with no code change: gradients reach
q, k, v and the log decays a (LION-S / LION-D decays are trained). Validation lives here, at the public entry; the
launchers in chunked.py assume contiguous, checked tensors.
"""
from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from lion_export.kernels.chunked import (check_heads, check_problem, chunked_backward, chunked_forward, ieee_dots,
                      kernel_chunk_size)
from lion_export.kernels.launch_inputs import check_kernel_inputs

#: input dtypes the kernels take; fp64 computes in fp64 (for gradcheck), everything else in fp32
INPUT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


class LionChunkedFunction(torch.autograd.Function):
    """y = LION chunked attention of (q, k, v, a); saves the inputs and, when normalising, y and the fp32 den."""

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, a: torch.Tensor, normalize: bool,
                eps: float, chunk_size: int) -> torch.Tensor:
        y, den = chunked_forward(q, k, v, a, normalize=normalize, eps=eps, chunk_size=chunk_size)
        # the unnormalised backward needs neither y nor den
        ctx.save_for_backward(q, k, v, a, *((y, den) if normalize else (None, None)))
        ctx.options = {"normalize": normalize, "eps": eps, "chunk_size": chunk_size}
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, dy: torch.Tensor):
        q, k, v, a, y, den = ctx.saved_tensors
        dq, dk, dv, da = chunked_backward(q, k, v, a, dy.contiguous(), y, den, **ctx.options)
        return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), da.to(a.dtype), None, None, None


def lion_chunked(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, a: torch.Tensor, *, normalize: bool,
                 eps: float, chunk_size: int) -> torch.Tensor:
    """LION attention in the chunked form with the fused Triton kernels, differentiable in q, k, v and a.

    q, k: (B, H, L, dk); v: (B, H, L, dv), all fp32 / fp16 / bf16 (or fp64); a: (B, H, L) log decays <= 0,
    fp32 (fp64 for fp64 inputs). Returns (B, H, L, dv) in q's dtype. Needs CUDA tensors, or TRITON_INTERPRET=1.
    chunk_size is rounded up to a chunk the kernels have (`kernel_chunk_size`); the result does not depend on it.
    """
    check_kernel_inputs("chunked Triton kernels", q, k, v, a, INPUT_DTYPES)
    compute = torch.float64 if q.dtype == torch.float64 else torch.float32
    if a.dtype != compute:
        raise ValueError(f"log decays must be {compute} for {q.dtype} inputs, got {a.dtype}")
    dk, dv = q.shape[3], v.shape[3]
    chunk_size = kernel_chunk_size(chunk_size, dk, dv, ieee_dots(q.dtype))
    check_problem(dk, dv, chunk_size)
    check_heads(q.shape[0], q.shape[1])
    return LionChunkedFunction.apply(q.contiguous(), k.contiguous(), v.contiguous(), a.contiguous(),
                                     bool(normalize), float(eps), chunk_size)
