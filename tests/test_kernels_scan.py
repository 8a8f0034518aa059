"""The fused bidirectional scan kernel against the independent float64 reference.

On machines without a GPU the kernel runs under TRITON_INTERPRET=1 (tests/conftest.py), which costs milliseconds
per token step, so the shapes are small: one 16-wide head for the full matrix of variants x normalisations x lengths,
and one padded, multi-tile shape (dk = 20, dv = 40) for the masks and dv tiles.

Tolerances. fp32: rtol 1e-4 (plus an absolute floor of 1e-5 x the output scale for entries that cancel to ~0).
fp16: the kernel reads fp16 inputs and rounds its output to fp16, so it is compared with the reference on the same
fp16-rounded inputs; the output rounding alone is up to 2^-11 ~ 4.9e-4 relative, so rtol 1e-3 with an absolute floor
of 5e-4 x the output scale (measured: at most ~25% of that allowance). fp16 runs L = 7 and 300 only: its risk is
accumulated rounding over long sweeps, and the short edge cases (L = 1) are the same code path as in fp32.
bf16 (rounding 2^-8) only on a GPU: the interpreter does not support bf16 arithmetic.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from reference import reference_attention

from lion_export import lion_attention
from lion_export.kernels import lion_scan

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
LENGTHS = (1, 7, 64, 197, 300)
LENGTHS_FP16 = (7, 300)
VARIANTS = ("lit", "d", "s")
BATCH = 2


def _log_decay(variant: str, batch: int, heads: int, length: int, gen: torch.Generator) -> torch.Tensor | None:
    """LION-LIT: none; LION-D: log sigmoid of one parameter per head; LION-S: log(1 - sigmoid) per token."""
    if variant == "lit":
        return None
    if variant == "d":
        return F.logsigmoid(torch.randn(heads, generator=gen) + 2.0)
    lam = 1 - torch.sigmoid(torch.randn(batch, heads, length, generator=gen) - 2.0)
    return lam.log()


def _full_log_decay(log_decay: torch.Tensor | None, batch: int, heads: int, length: int) -> torch.Tensor:
    """The kernel's (B, H, L) layout (a stride-0 view for LION-D, so the wrapper's copy is exercised)."""
    if log_decay is None:
        return torch.zeros(batch, heads, length)
    if log_decay.dim() == 1:
        return log_decay.view(1, heads, 1).expand(batch, heads, length)
    return log_decay


def _inputs(variant: str, normalize: bool, length: int, dk: int = 16, dv: int = 16, heads: int = 1, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(BATCH, heads, length, dk, generator=gen) for _ in range(2))
    if normalize:   # a positive feature map (elu + 1, LION-LIT's) keeps the normaliser away from zero
        q, k = F.elu(q) + 1, F.elu(k) + 1
    else:           # the MLM convention: identity feature map, 1/sqrt(dk) scale
        q = q / math.sqrt(dk)
    v = torch.randn(BATCH, heads, length, dv, generator=gen)
    return q, k, v, _log_decay(variant, BATCH, heads, length, gen)


def _assert_matches(y: torch.Tensor, ref: torch.Tensor, rtol: float, atol_scale: float) -> None:
    torch.testing.assert_close(y.double().cpu(), ref, rtol=rtol, atol=atol_scale * ref.abs().max().item())


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("variant", VARIANTS)
def test_scan_fp32_matches_reference(variant: str, normalize: bool) -> None:
    for length in LENGTHS:
        q, k, v, log_decay = _inputs(variant, normalize, length)
        a = _full_log_decay(log_decay, BATCH, 1, length)
        y = lion_scan(*(x.to(DEVICE) for x in (q, k, v, a)), normalize=normalize, eps=1e-6)
        assert y.dtype == torch.float32 and y.shape == v.shape
        _assert_matches(y, reference_attention(q, k, v, log_decay, normalize=normalize), 1e-4, 1e-5)


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("variant", VARIANTS)
def test_scan_fp16_matches_reference(variant: str, normalize: bool) -> None:
    for length in LENGTHS_FP16:
        q, k, v, log_decay = _inputs(variant, normalize, length, seed=1)
        q, k, v = (x.half() for x in (q, k, v))
        a = _full_log_decay(log_decay, BATCH, 1, length)
        y = lion_scan(*(x.to(DEVICE) for x in (q, k, v, a)), normalize=normalize, eps=1e-6)
        assert y.dtype == torch.float16
        _assert_matches(y, reference_attention(q, k, v, log_decay, normalize=normalize), 1e-3, 5e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="bf16 needs a GPU (the interpreter has no bf16 arithmetic)")
def test_scan_bf16_matches_reference() -> None:
    q, k, v, log_decay = _inputs("s", True, 300, dk=64, dv=64, heads=2)
    q, k, v = (x.bfloat16() for x in (q, k, v))
    y = lion_scan(*(x.to(DEVICE) for x in (q, k, v, log_decay)), normalize=True, eps=1e-6)
    _assert_matches(y, reference_attention(q, k, v, log_decay), 1.6e-2, 8e-3)


@pytest.mark.parametrize("normalize", [True, False])
def test_scan_padded_head_dims_and_dv_tiles(normalize: bool) -> None:
    """dk = 20 pads to 32 (masked lanes); dv = 40 needs two 32-wide tiles, the second one partly masked."""
    q, k, v, log_decay = _inputs("s", normalize, 33, dk=20, dv=40, heads=2, seed=2)
    y = lion_scan(*(x.to(DEVICE) for x in (q, k, v, log_decay)), normalize=normalize, eps=1e-6)
    _assert_matches(y, reference_attention(q, k, v, log_decay, normalize=normalize), 1e-4, 1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_lion_attention_recurrent_triton_backend(variant: str) -> None:
    """The public entry point reaches the kernel with every log_decay layout (None, (H,), (B, H, L))."""
    q, k, v, log_decay = _inputs(variant, True, 7, heads=2, seed=3)
    y = lion_attention(*(x.to(DEVICE) for x in (q, k, v)),
                       None if log_decay is None else log_decay.to(DEVICE), form="recurrent", backend="triton")
    _assert_matches(y, reference_attention(q, k, v, log_decay), 1e-4, 1e-5)


def test_scan_empty_sequence() -> None:
    q = torch.zeros(BATCH, 1, 0, 16, device=DEVICE)
    assert lion_scan(q, q, q, torch.zeros(BATCH, 1, 0, device=DEVICE), normalize=True, eps=1e-6).shape == q.shape


@pytest.mark.parametrize("bad, message", [
    (dict(q=torch.zeros(1, 1, 4, 16, dtype=torch.float64)), "dtype"),
    (dict(v=torch.zeros(1, 1, 5, 16)), "expected q, k"),
    (dict(a=torch.zeros(1, 1, 3)), "expected q, k"),
    (dict(q=torch.zeros(1, 1, 4, 300), k=torch.zeros(1, 1, 4, 300)), "head dims"),
    (dict(a=torch.zeros(1, 1, 4, dtype=torch.float16)), "log decays must be torch.float32"),
])
def test_scan_rejects_bad_input(bad: dict, message: str) -> None:
    args = dict(q=torch.zeros(1, 1, 4, 16), k=torch.zeros(1, 1, 4, 16), v=torch.zeros(1, 1, 4, 16),
                a=torch.zeros(1, 1, 4))
    args.update(bad)
    if args["q"].dtype == torch.float64:
        args["k"], args["v"] = args["k"].double(), args["v"].double()
    with pytest.raises(ValueError, match=message):
        lion_scan(args["q"], args["k"], args["v"], args["a"], normalize=True, eps=1e-6)
