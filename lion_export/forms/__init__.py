"""`lion_attention`: one LION attention, three exactly-equivalent forms.

The forms differ only in cost: "parallel" is the full masked attention (O(L^2)), "chunked" the chunkwise form
(O(L c)), "recurrent" the bidirectional RNN (O(dk dv) state). All compute in fp32 (fp64 for fp64 inputs) and
return the input dtype, so fp16/bf16 models keep their decay prefix sums in fp32.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

from .chunked import chunked_attention
from .decay import expand_log_decay
from .parallel import parallel_attention
from .recurrent import recurrent_attention

FORMS = ("parallel", "chunked", "recurrent")
ATTENTION_BACKENDS = ("auto", "torch", "triton")

FormOverride = Callable[..., torch.Tensor]
_form_overrides: dict[str, FormOverride] = {}


@contextmanager
def override_form(form: str, impl: FormOverride) -> Iterator[None]:
    """Within the block, `lion_attention(form=form)` returns impl(q, k, v, a, normalize=..., eps=...).

    The one hook through which a graph exporter swaps a form for its own op (lion_export.export routes
    "recurrent" to the `lion.SelectiveScan` node while tracing), so that models and forms never import onnx.
    impl receives q, k, v in their own dtype and the log decays a already expanded to (B, H, L) in fp32.
    """
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    previous = _form_overrides.get(form)
    _form_overrides[form] = impl
    try:
        yield
    finally:
        if previous is None:
            del _form_overrides[form]
        else:
            _form_overrides[form] = previous


def _use_triton(form: str, backend: str, q: torch.Tensor, needs_grad: bool) -> bool:
    """auto: the fused kernels for CUDA tensors, except where they cannot serve: the scan kernel (recurrent form)
    is forward-only, so a recurrent call that needs gradients, or any fp64 call, stays in PyTorch.
    backend="triton" forces the kernels (CPU tensors too, under TRITON_INTERPRET=1)."""
    if backend not in ATTENTION_BACKENDS:
        raise ValueError(f"backend must be one of {ATTENTION_BACKENDS}, got {backend!r}")
    if form == "parallel" or backend == "torch":
        if backend == "triton":
            raise ValueError("backend='triton' has kernels for the 'chunked' and 'recurrent' forms only")
        return False
    if backend == "triton":
        if not q.is_cuda and os.environ.get("TRITON_INTERPRET") != "1":
            raise ValueError("backend='triton' needs CUDA tensors (or TRITON_INTERPRET=1 for CPU tensors)")
        if form == "recurrent" and needs_grad:
            raise ValueError("backend='triton' runs the recurrent form forward only (no gradients); train with "
                             "form='chunked' or backend='torch'")
        return True
    return q.is_cuda and q.dtype != torch.float64 and not (form == "recurrent" and needs_grad)


def _is_eager() -> bool:
    """True outside tracing, export and compilation: where a data-dependent input check is possible and cheap."""
    return not (torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.compiler.is_exporting()
                or torch.onnx.is_in_onnx_export())


def lion_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, log_decay: torch.Tensor | None = None,
                   *, form: str = "parallel", chunk_size: int = 64, normalize: bool = True, eps: float = 1e-6,
                   backend: str = "auto") -> torch.Tensor:
    """LION attention of feature-mapped q, k (B, H, L, dk) and v (B, H, L, dv) -> (B, H, L, dv).

    log_decay: None (LION-LIT), (H,) (LION-D) or (B, H, L) (LION-S), all <= 0 (log of lambda).
    normalize: divide by C_i + eps (vision models); False is the MLM convention.
    """
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    if q.dim() != 4 or k.shape != q.shape or v.shape[:3] != q.shape[:3]:
        raise ValueError(f"expected q, k (B, H, L, dk) and v (B, H, L, dv); got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}")
    batch, heads, length, _ = q.shape
    if log_decay is not None and _is_eager() and bool((log_decay > 0).any()):
        raise ValueError(f"log_decay must be <= 0 (the log of a decay in (0, 1]); got a maximum of "
                         f"{log_decay.max().item():.3g}: pass log(lambda), not lambda")
    a = expand_log_decay(log_decay, batch, heads, length, like=q)
    override = _form_overrides.get(form)
    if override is not None:
        return override(q, k, v, a, normalize=normalize, eps=eps)
    needs_grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (q, k, v, log_decay))
    if _use_triton(form, backend, q, needs_grad):
        from ..kernels import lion_chunked, lion_scan
        if form == "chunked":
            return lion_chunked(q, k, v, a, normalize=normalize, eps=eps, chunk_size=chunk_size)
        return lion_scan(q, k, v, a, normalize=normalize, eps=eps)
    out_dtype = q.dtype
    qf, kf, vf = (x.to(a.dtype) for x in (q, k, v))
    if form == "parallel":
        out = parallel_attention(qf, kf, vf, a, normalize, eps)
    elif form == "chunked":
        per_head = log_decay is not None and log_decay.dim() == 1      # LION-D: one mask per head
        out = chunked_attention(qf, kf, vf, None if log_decay is None else a, normalize, eps, chunk_size,
                                head_decay=log_decay.to(a.dtype) if per_head else None)
    else:
        out = recurrent_attention(qf, kf, vf, a, normalize, eps)
    return out.to(out_dtype)


__all__ = ["FORMS", "ATTENTION_BACKENDS", "lion_attention", "override_form"]
