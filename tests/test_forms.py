"""Every form of every variant equals the float64 full masked attention (tests/reference.py)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from reference import reference_attention

from lion_export import lion_attention

VARIANTS = ("lit", "decay", "selective")
B, DK, DV = 3, 8, 5


def make_inputs(variant: str, length: int, heads: int, seed: int, dtype=torch.float32):
    """Feature-mapped (positive) q, k as the vision models give, signed v, and the variant's log decays."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.rand(B, heads, length, DK, generator=gen)
    k = torch.rand(B, heads, length, DK, generator=gen)
    v = torch.randn(B, heads, length, DV, generator=gen)
    if variant == "lit":
        log_decay = None
    elif variant == "decay":
        log_decay = F.logsigmoid(torch.randn(heads, generator=gen) + 2.0)   # lambda ~ 0.88: long reach
    else:
        log_decay = F.logsigmoid(-torch.randn(B, heads, length, generator=gen))
    return q.to(dtype), k.to(dtype), v.to(dtype), log_decay


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    """Max abs error over the output, relative to the output's largest magnitude."""
    return ((out.double() - ref).abs().max() / ref.abs().max().clamp_min(1e-30)).item()


@pytest.mark.parametrize("length", [1, 2, 7, 64, 197, 1025])
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("normalize", [True, False])
def test_all_forms_equal_reference_fp32(length: int, variant: str, normalize: bool) -> None:
    heads = 1 + (length + len(variant)) % 3   # 1..3 heads, varying over the grid
    q, k, v, log_decay = make_inputs(variant, length, heads, seed=length)
    ref = reference_attention(q, k, v, log_decay, normalize=normalize)
    runs = {"parallel": lion_attention(q, k, v, log_decay, form="parallel", normalize=normalize)}
    for chunk in sorted({1, 16, 64, length, 2 * length}):
        runs[f"chunked c={chunk}"] = lion_attention(q, k, v, log_decay, form="chunked", chunk_size=chunk,
                                                    normalize=normalize)
    if length <= 197:   # the token loop is slow in Python; L = 1025 is covered by the stability test's L = 8192
        runs["recurrent"] = lion_attention(q, k, v, log_decay, form="recurrent", normalize=normalize)
    errors = {name: rel_err(out, ref) for name, out in runs.items()}
    assert all(out.shape == (B, heads, length, DV) and out.dtype == torch.float32 for out in runs.values())
    assert max(errors.values()) <= 1e-5, errors


# fp16/bf16 inputs: every form computes in fp32 and rounds once on output, so the error is the output rounding
# (2^-11 for fp16, 2^-8 for bf16, relative to each element) plus fp32 noise. Measured on this grid: <= 2.7e-4 (fp16),
# <= 3.3e-3 (bf16). The bounds below leave >= 2x headroom.
HALF_TOL = {torch.float16: 1e-3, torch.bfloat16: 8e-3}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("form", ["parallel", "chunked", "recurrent"])
def test_half_precision_inputs(dtype: torch.dtype, variant: str, form: str) -> None:
    q, k, v, log_decay = make_inputs(variant, 71, heads=2, seed=7, dtype=dtype)
    ref = reference_attention(q, k, v, log_decay)          # the same rounded inputs, in float64
    out = lion_attention(q, k, v, log_decay, form=form, chunk_size=16)
    assert out.dtype == dtype
    assert rel_err(out, ref) <= HALF_TOL[dtype]


@pytest.mark.parametrize("variant", ["decay", "selective"])
@pytest.mark.parametrize("form,chunk", [("chunked", 1), ("chunked", 2), ("chunked", 8), ("chunked", 64),
                                        ("recurrent", 0)])
@pytest.mark.parametrize("normalize", [True, False])
def test_gradients_match_parallel_form(variant: str, form: str, chunk: int, normalize: bool) -> None:
    """d/d(q, k, v, log_decay) of chunked and recurrent equal the parallel form's (float64 inputs)."""
    def grads(form_name: str, chunk_size: int):
        q, k, v, log_decay = make_inputs(variant, 37, heads=2, seed=3, dtype=torch.float64)
        log_decay = log_decay.double()
        leaves = [t.requires_grad_() for t in (q, k, v, log_decay)]
        out = lion_attention(q, k, v, log_decay, form=form_name, chunk_size=chunk_size or 64, normalize=normalize)
        weight = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
        (out * weight).sum().backward()
        return [t.grad for t in leaves]

    for name, got, want in zip("q k v log_decay".split(), grads(form, chunk), grads("parallel", 0)):
        assert torch.allclose(got, want, rtol=1e-9, atol=1e-11), name


def test_lit_gradients_match_parallel_form() -> None:
    """The LION-LIT fast path (plain linear attention, no mask) differentiates like the masked parallel form."""
    def grads(form_name: str):
        q, k, v, _ = make_inputs("lit", 29, heads=2, seed=4, dtype=torch.float64)
        leaves = [t.requires_grad_() for t in (q, k, v)]
        out = lion_attention(q, k, v, None, form=form_name, chunk_size=4)
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        return [t.grad for t in leaves]

    for form in ("chunked", "recurrent"):
        for got, want in zip(grads(form), grads("parallel")):
            assert torch.allclose(got, want, rtol=1e-9, atol=1e-11), form


# The chunked form's graph path groups chunks GROUP = 8 at a time over LEVELS levels (lion_export/forms/chunked.py);
# at chunk 1 and 2 the group edges (8 and 64 chunks) fall at short lengths, so every level boundary is crossed on
# either side, in the graph path and in the eager state scan. The recurrent form steps BLOCK = 64 tokens;
# 63 / 65 / 129 put a short block last.
@pytest.mark.parametrize("length,chunk", [(7, 1), (8, 1), (9, 1), (63, 1), (64, 1), (65, 1), (127, 2),
                                          (129, 2), (63, 4), (65, 4), (129, 4)])
@pytest.mark.parametrize("variant", ["decay", "selective"])
def test_hierarchy_and_block_edges(monkeypatch, length: int, chunk: int, variant: str) -> None:
    from lion_export.forms import chunked
    assert chunked.GROUP == 8, "the lengths above are the edges of GROUP = 8"
    q, k, v, log_decay = make_inputs(variant, length, heads=2, seed=length)
    for normalize in (True, False):
        ref = reference_attention(q, k, v, log_decay, normalize=normalize)
        runs = {"chunked": lion_attention(q, k, v, log_decay, form="chunked", chunk_size=chunk, normalize=normalize)}
        if length < 200:
            runs["recurrent"] = lion_attention(q, k, v, log_decay, form="recurrent", normalize=normalize)
        with monkeypatch.context() as graph_path:
            graph_path.setattr(chunked, "in_place_ok", lambda *tensors: False)
            graph_path.setattr(chunked, "hierarchy_levels", lambda n: chunked.LEVELS)
            runs["chunked graph path"] = lion_attention(q, k, v, log_decay, form="chunked", chunk_size=chunk,
                                                        normalize=normalize)
        errors = {name: rel_err(out, ref) for name, out in runs.items()}
        assert max(errors.values()) <= 1e-5, (normalize, errors)


@pytest.mark.parametrize("length", [1, 7, 65, 300])
@pytest.mark.parametrize("variant", ["decay", "selective"])
def test_chunked_graph_paths_in_eager(monkeypatch, length: int, variant: str) -> None:
    """What a graph export runs: no in-place updates, one run of chunks, the dense state mix over all LEVELS
    levels even for few chunks (padding at every level). And the eager pieces at their extremes: one chunk per
    run and per state piece (each row in one-chunk segments, the state carried across them), and pieces of
    several whole rows. All equal the reference; LION-D (one mask per row) takes its own path in each."""
    from lion_export.forms import chunked
    q, k, v, log_decay = make_inputs(variant, length, heads=2, seed=9)
    ref = reference_attention(q, k, v, log_decay)
    per_state = DK * (DV + 1)
    for slab, state in ((1, 1), (1, per_state), (2 ** 18, 3 * per_state * (-(-length // 4)))):
        monkeypatch.setattr(chunked, "SLAB_ELEMENTS", slab)
        monkeypatch.setattr(chunked, "STATE_ELEMENTS", state)
        assert rel_err(lion_attention(q, k, v, log_decay, form="chunked", chunk_size=4), ref) <= 1e-5, (slab, state)
    monkeypatch.setattr(chunked, "in_place_ok", lambda *tensors: False)
    monkeypatch.setattr(chunked, "hierarchy_levels", lambda n: chunked.LEVELS)
    assert rel_err(lion_attention(q, k, v, log_decay, form="chunked", chunk_size=4), ref) <= 1e-5


def test_parallel_gradients_match_reference_autograd() -> None:
    """The parallel form's own gradients equal autograd through the independent reference."""
    q, k, v, log_decay = make_inputs("selective", 23, heads=2, seed=11, dtype=torch.float64)
    log_decay = log_decay.double()
    ours = [t.clone().requires_grad_() for t in (q, k, v, log_decay)]
    theirs = [t.clone().requires_grad_() for t in (q, k, v, log_decay)]
    lion_attention(*ours, form="parallel").pow(2).sum().backward()
    q2, k2, v2, a2 = theirs
    # the reference detaches its inputs; rebuild it inline with autograd enabled for the comparison
    incl = a2.cumsum(-1)
    excl = incl - a2
    i = torch.arange(23).view(-1, 1)
    j = torch.arange(23).view(1, -1)
    log_m = torch.where(j < i, excl.unsqueeze(-1) - excl.unsqueeze(-2), incl.unsqueeze(-2) - incl.unsqueeze(-1))
    log_m = torch.where(i == j, torch.zeros_like(log_m), log_m)
    scores = (q2 @ k2.transpose(-1, -2)) * log_m.exp()
    ((scores @ v2) / (scores.sum(-1, keepdim=True) + 1e-6)).pow(2).sum().backward()
    for got, want in zip(ours, theirs):
        assert torch.allclose(got.grad, want.grad, rtol=1e-9, atol=1e-11)


# Chunked: every decay exponent is a direct sum over a chunk, so L = 8192 is as exact as L = 64 (measured <= 5e-7).
# Recurrent: each state is a running sum of up to 8192 fp32 terms, whose rounding grows with L (measured 1.0e-5
# with every lambda = 1 - 1e-6, the worst case: nothing decays away).
STABILITY_TOL = {"chunked": 2e-6, "recurrent": 5e-5}


@pytest.mark.parametrize("decays", ["mixed", "near_zero", "near_one"])
@pytest.mark.parametrize("form", ["chunked", "recurrent"])
def test_selective_stability_at_8192(decays: str, form: str) -> None:
    length, heads = 8192, 1
    gen = torch.Generator().manual_seed(5)
    q = torch.rand(1, heads, length, 8, generator=gen)
    k = torch.rand(1, heads, length, 8, generator=gen)
    v = torch.randn(1, heads, length, 8, generator=gen)
    lo, hi = math.log(1e-6), math.log1p(-1e-6)
    if decays == "near_zero":
        log_decay = torch.full((1, heads, length), lo)
    elif decays == "near_one":
        log_decay = torch.full((1, heads, length), hi)
    else:   # extremes and everything between, interleaved: the hardest case for prefix-sum differences
        pick = torch.rand(1, heads, length, generator=gen)
        between = torch.rand(1, heads, length, generator=gen) * (hi - lo) + lo
        log_decay = torch.where(pick < 0.3, lo, torch.where(pick < 0.6, hi, between))
    ref = reference_attention(q, k, v, log_decay)
    out = lion_attention(q, k, v, log_decay, form=form, chunk_size=64)
    assert torch.isfinite(out).all()
    assert rel_err(out, ref) <= STABILITY_TOL[form]


def test_decay_per_head_equals_per_token() -> None:
    """LION-D given as (H,) equals the same decays spelled out per token as (B, H, L)."""
    q, k, v, log_decay = make_inputs("decay", 19, heads=3, seed=2)
    per_token = log_decay.view(1, 3, 1).expand(B, 3, 19).contiguous()
    for form in ("parallel", "chunked", "recurrent"):
        a = lion_attention(q, k, v, log_decay, form=form, chunk_size=4)
        b = lion_attention(q, k, v, per_token, form=form, chunk_size=4)
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kwargs,message", [
    ({"form": "blocked"}, "form must be one of"),
    ({"form": "chunked", "chunk_size": 0}, "chunk_size must be a positive integer"),
    ({"backend": "cuda"}, "backend must be one of"),
    ({"form": "parallel", "backend": "triton"}, "chunked' and 'recurrent' forms only"),
])
def test_bad_arguments_are_clear_errors(kwargs: dict, message: str) -> None:
    q, k, v, _ = make_inputs("lit", 5, heads=2, seed=0)
    with pytest.raises(ValueError, match=message):
        lion_attention(q, k, v, **kwargs)


def test_forced_scan_kernel_refuses_to_drop_gradients() -> None:
    """The fused scan is forward-only: asking it for a differentiable result is an error, not a silent cut."""
    q, k, v, _ = make_inputs("lit", 5, heads=2, seed=0)
    q.requires_grad_()
    with pytest.raises(ValueError, match="forward only"):
        lion_attention(q, k, v, form="recurrent", backend="triton")


@pytest.mark.parametrize("log_decay,message", [
    (torch.zeros(5), "must have H=2 entries"),
    (torch.zeros(3, 2, 4), r"must be None, \(H,\) or \(B, H, L\)"),
])
def test_bad_decay_shapes(log_decay: torch.Tensor, message: str) -> None:
    q, k, v, _ = make_inputs("lit", 5, heads=2, seed=0)
    with pytest.raises(ValueError, match=message):
        lion_attention(q, k, v, log_decay)


@pytest.mark.parametrize("spread", ["near one", "1e-6 to 1 - 1e-6"])
def test_product_mask_equals_the_float64_mask(spread: str) -> None:
    """The eager forms' c x c mask, running products of exp(a_t) (decay.py::pairwise_decay), against the float64
    exp of the direct log sums: each entry within 1e-6 of the reference relative to itself (measured <= 3e-7),
    where the reference is an fp32 normal number; below that, both are under fp32's smallest normal."""
    from lion_export.forms.decay import pairwise_decay, pairwise_log_decay
    gen = torch.Generator().manual_seed(5)
    if spread == "near one":
        decays = 1 - torch.rand(4, 64, generator=gen, dtype=torch.float64) * 1e-3
    else:
        logs = torch.empty(4, 64, dtype=torch.float64).uniform_(math.log(1e-6), math.log(1 - 1e-6), generator=gen)
        decays = logs.exp()
    a = decays.log().float()
    ref = pairwise_log_decay(a.double()).exp()
    got = pairwise_decay(a)
    assert got.dtype == torch.float32 and got.shape == (4, 64, 64)
    tiny = torch.finfo(torch.float32).tiny
    normal = ref >= tiny
    assert ((got.double() - ref).abs() / ref)[normal].max().item() <= 1e-6
    assert bool((got.double()[~normal].abs() < tiny).all())
