"""Checks shared by the kernels' launchers: what a Triton kernel would otherwise turn into a crash or garbage.

Both kernels take the same tensors as `lion.SelectiveScan` (q, k (B, H, L, dk), v (B, H, L, dv), log decays
(B, H, L)) and index tokens with int32 offsets, so the same rules apply to both.
"""
from __future__ import annotations

import os

import torch


def check_kernel_inputs(kernel: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, a: torch.Tensor,
                        dtypes: tuple[torch.dtype, ...]) -> None:
    """Shapes, one dtype among `dtypes` for q, k, v, one device, a runnable device, int32-addressable length."""
    if q.dim() != 4 or k.shape != q.shape or v.shape[:3] != q.shape[:3] or a.shape != q.shape[:3]:
        raise ValueError(f"expected q, k (B, H, L, dk), v (B, H, L, dv), a (B, H, L); got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}, {tuple(a.shape)}")
    if q.dtype not in dtypes or k.dtype != q.dtype or v.dtype != q.dtype:
        names = ", ".join(str(d).removeprefix("torch.") for d in dtypes)
        raise ValueError(f"the {kernel} takes q, k, v of one dtype among {names}; got {q.dtype}, {k.dtype}, "
                         f"{v.dtype}")
    if len({x.device for x in (q, k, v, a)}) != 1:
        raise ValueError("q, k, v and the log decays must be on one device")
    if not q.is_cuda and os.environ.get("TRITON_INTERPRET") != "1":
        raise ValueError(f"the {kernel} needs CUDA tensors (or TRITON_INTERPRET=1 for CPU tensors)")
    if q.shape[2] * max(q.shape[3], v.shape[3]) >= 2**31:
        raise ValueError(f"sequence too long for the {kernel}'s int32 token offsets: L={q.shape[2]}")


__all__ = ["check_kernel_inputs"]
