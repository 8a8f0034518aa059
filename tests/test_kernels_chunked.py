"""The chunked Triton kernels (forward and backward) against the float64 reference, under the interpreter on CPUs.

Gradients are compared with autograd through the package's float64 parallel form (tests/reference.py detaches its
inputs, so it cannot be differentiated); each gradient test first checks that this differentiated function equals
the independent reference to 1e-12 at the very inputs, and `gradcheck` separately compares the kernels' backward with
finite differences of their own forward in fp64. The interpreter is slow (about 2 ms per Triton op), so sizes are
small: B = 2, one head, head dim 16, and the backward sweeps each L once, with the chunk sizes spread over the lengths.
"""
from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F
from reference import reference_attention

from lion_export import lion_attention
from lion_export.forms.parallel import parallel_attention
from lion_export.kernels import lion_chunked
from lion_export.kernels.aot.specs import KernelConfig, ProblemShape
from lion_export.kernels.chunked import aot_specs, kernel_chunk_size

VARIANTS = ("lit", "decay", "selective")
LENGTHS = (1, 7, 64, 197, 300)
CHUNKS = (16, 32, 64)
#: each length's chunk size in the backward tests: every chunk size is used, with full, short and masked chunks
BACKWARD_CHUNK = {1: 16, 7: 32, 64: 16, 197: 64, 300: 32}
B, H, D = 2, 1, 16
EPS = 1e-6
#: where the kernels run: CPU tensors under the interpreter (tests/conftest.py), CUDA tensors on a GPU
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def make_inputs(variant: str, length: int, seed: int, dtype: torch.dtype = torch.float32, dk: int = D,
                dv: int = D) -> tuple[torch.Tensor, ...]:
    """Positive (feature-mapped) q, k, signed v, and the variant's log decays expanded to (B, H, L)."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.rand(B, H, length, dk, generator=gen)
    k = torch.rand(B, H, length, dk, generator=gen)
    v = torch.randn(B, H, length, dv, generator=gen)
    if variant == "lit":
        a = torch.zeros(B, H, length)
    elif variant == "decay":
        a = F.logsigmoid(torch.randn(H, generator=gen) + 2.0).view(1, H, 1).expand(B, H, length).contiguous()
    else:
        a = F.logsigmoid(-torch.randn(B, H, length, generator=gen))     # lambda spread over (0, 1)
    return q.to(dtype), k.to(dtype), v.to(dtype), a


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    """Max abs error relative to the reference's largest magnitude."""
    return ((out.double() - ref).abs().max() / ref.abs().max().clamp_min(1e-30)).item()


def chunked(q, k, v, a, **options) -> torch.Tensor:
    """lion_chunked on DEVICE, the result back on the CPU (where the reference is)."""
    return lion_chunked(*(x.to(DEVICE) for x in (q, k, v, a)), **options).cpu()


def kernel_grads(q, k, v, a, dy, normalize: bool, chunk: int):
    """y and (dq, dk, dv, da) of the kernels for the upstream gradient dy, computed on DEVICE, returned on the CPU."""
    leaves = [x.detach().to(DEVICE, copy=True).requires_grad_() for x in (q, k, v, a)]
    y = lion_chunked(*leaves, normalize=normalize, eps=EPS, chunk_size=chunk)
    y.backward(dy.to(DEVICE))
    return y.detach().cpu(), [x.grad.cpu() for x in leaves]


def reference_grads(q, k, v, a, dy, normalize: bool):
    """float64 y and gradients by autograd through the parallel form, after checking it equals the reference."""
    leaves = [x.detach().double().requires_grad_() for x in (q, k, v, a)]
    y = parallel_attention(*leaves, normalize, EPS)
    assert rel_err(y.detach(), reference_attention(q, k, v, a, normalize=normalize, eps=EPS)) <= 1e-12
    y.backward(dy.double())
    return y.detach(), [x.grad for x in leaves]


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("variant", VARIANTS)
def test_forward_matches_reference_fp32(variant: str, normalize: bool, length: int, chunk: int) -> None:
    q, k, v, a = make_inputs(variant, length, seed=length + chunk)
    y = chunked(q, k, v, a, normalize=normalize, eps=EPS, chunk_size=chunk)
    assert y.shape == (B, H, length, D) and y.dtype == torch.float32
    assert rel_err(y, reference_attention(q, k, v, a, normalize=normalize, eps=EPS)) <= 1e-4


def _assert_grads_close(grads, ref_grads, tol: float, length: int, normalize: bool) -> None:
    """Each gradient within tol of the reference, relative to the reference's largest magnitude.

    One exception, a property of the maths rather than of the kernels: for a single normalised token y = v
    whatever q and k are, so the true dq, dk are eps / den^2-sized (~1e-7) and every fp32 evaluation of them is
    cancellation noise of that size (dS = dy.v / den - dy.v q.k / den^2). They are bounded absolutely instead.
    """
    for name, grad, ref in zip(("dq", "dk", "dv", "da"), grads, ref_grads):
        if length == 1 and normalize and name in ("dq", "dk"):
            assert (grad.double() - ref).abs().max().item() <= 1e-5, name
        elif length == 1 and name == "da":      # a single token has no pair, so no decay gradient at all
            assert torch.count_nonzero(grad) == 0 and torch.count_nonzero(ref) == 0
        else:
            assert rel_err(grad, ref) <= tol, (name, rel_err(grad, ref))


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("variant", VARIANTS)
def test_backward_matches_reference_fp32(variant: str, normalize: bool, length: int) -> None:
    q, k, v, a = make_inputs(variant, length, seed=3 * length + 1)
    dy = torch.randn(B, H, length, D, generator=torch.Generator().manual_seed(length))
    y, grads = kernel_grads(q, k, v, a, dy, normalize, BACKWARD_CHUNK[length])
    ref_y, ref_grads = reference_grads(q, k, v, a, dy, normalize)
    assert rel_err(y, ref_y) <= 1e-4
    assert all(g.dtype == torch.float32 for g in grads)
    _assert_grads_close(grads, ref_grads, 1e-4, length, normalize)


# fp16: the reference sees the same fp16-rounded inputs (and dy) in float64, so the error is the kernels' fp16
# rounding of y and of dq, dk, dv (2^-11 = 4.9e-4 relative per element) plus fp32 noise; the backward forms dden from
# the saved fp16 y (as FlashAttention forms rowsum(dO * O)), which adds one fp16 rounding of y to dq, dk and da.
# Measured on this grid (max over variants and normalisations of rel_err, relative to each tensor's max): y 3.3e-4,
# dq 7.9e-4, dk 5.0e-4, dv 4.1e-4, da 3.9e-4. The bound keeps >= 2x headroom.
FP16_TOL = 2e-3


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("variant", VARIANTS)
def test_forward_and_backward_fp16(variant: str, normalize: bool) -> None:
    length, chunk = 197, 32
    q, k, v, a = make_inputs(variant, length, seed=11, dtype=torch.float16)
    dy = torch.randn(B, H, length, D, generator=torch.Generator().manual_seed(5)).half()
    y, grads = kernel_grads(q, k, v, a, dy, normalize, chunk)
    ref_y, ref_grads = reference_grads(q, k, v, a, dy, normalize)
    assert y.dtype == torch.float16 and [g.dtype for g in grads] == [torch.float16] * 3 + [torch.float32]
    assert rel_err(y, ref_y) <= FP16_TOL
    _assert_grads_close(grads, ref_grads, FP16_TOL, length, normalize)


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("variant", VARIANTS)
def test_gradcheck_fp64(variant: str, normalize: bool) -> None:
    """torch.autograd.gradcheck in float64 (the interpreter runs fp64 tl.dot): 2 chunks, the second one short,
    head dims 3 and 5 padded to 16. fast_mode checks a random projection of each Jacobian, which keeps it to a
    few forward runs; the LION-D / LION-S decays are away from 0 so finite differences of a stay inside a <= 0."""
    gen = torch.Generator().manual_seed(7)
    q = torch.rand(1, 2, 21, 3, generator=gen, dtype=torch.float64)
    k = torch.rand(1, 2, 21, 3, generator=gen, dtype=torch.float64)
    v = torch.randn(1, 2, 21, 5, generator=gen, dtype=torch.float64)
    if variant == "lit":
        a = torch.zeros(1, 2, 21, dtype=torch.float64)
    elif variant == "decay":
        a = torch.tensor([-0.1, -0.7], dtype=torch.float64).view(1, 2, 1).expand(1, 2, 21).contiguous()
    else:
        a = -0.05 - torch.rand(1, 2, 21, generator=gen, dtype=torch.float64)
    # LIT's decays sit on the boundary a = 0 of the kernels' domain (a <= 0: exponents are clamped at 0), where a
    # central difference is one-sided; its decay gradient is checked against the reference in the backward tests
    inputs = [x.to(DEVICE).requires_grad_(variant != "lit" or x is not a) for x in (q, k, v, a)]

    def fn(q, k, v, a):
        return lion_chunked(q, k, v, a, normalize=normalize, eps=EPS, chunk_size=16)

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-8, rtol=1e-6, fast_mode=True)


@pytest.mark.parametrize("normalize", [True, False])
def test_head_dims_tiles_and_masks(normalize: bool) -> None:
    """dk != dv, dims that are not powers of two, dv = 80 (two dv tiles in the chunk kernels and three state tiles,
    the last ones masked), dk = dv = 128 (four state tiles; the backward loops over two dv tiles)."""
    for dk, dv, length, chunk in ((24, 80, 70, 32), (128, 128, 100, 64)):
        q, k, v, a = make_inputs("selective", length, seed=dk, dk=dk, dv=dv)
        dy = torch.randn(B, H, length, dv, generator=torch.Generator().manual_seed(dv))
        y, grads = kernel_grads(q, k, v, a, dy, normalize, chunk)
        ref_y, ref_grads = reference_grads(q, k, v, a, dy, normalize)
        assert y.shape == (B, H, length, dv)
        assert rel_err(y, ref_y) <= 1e-4
        _assert_grads_close(grads, ref_grads, 1e-4, length, normalize)


def test_lion_attention_trains_decays_through_the_kernels() -> None:
    """`lion_attention(form="chunked", backend="triton")`: the same values and gradients as the
    PyTorch chunked form, including the gradient reaching a per-head LION-D parameter of shape (H,)."""
    gen = torch.Generator().manual_seed(2)
    q, k = (torch.rand(2, 3, 50, 16, generator=gen) for _ in range(2))
    v = torch.randn(2, 3, 50, 16, generator=gen)
    logit = torch.randn(3, generator=gen)
    runs = {}
    for backend in ("triton", "torch"):
        leaves = [x.to(DEVICE, copy=True).requires_grad_() for x in (q, k, v, logit)]
        y = lion_attention(*leaves[:3], F.logsigmoid(leaves[3]), form="chunked", chunk_size=16, backend=backend)
        y.square().sum().backward()
        runs[backend] = [y.detach().cpu()] + [x.grad.cpu() for x in leaves]
    for got, want in zip(runs["triton"], runs["torch"]):
        assert rel_err(got, want.double()) <= 1e-4
    assert runs["triton"][4].abs().min() > 0       # every head's decay parameter receives a gradient


def test_aot_specs_launch_the_forward() -> None:
    """The AOT description is complete: launching its kernels in order from the specs alone (argument order, shapes,
    constexprs, grids; the workspace passed from one kernel to the next by name) reproduces the reference."""
    config = KernelConfig(dtype="fp32", head_dim=24, head_dim_v=80, normalize=True, eps=EPS, chunk_size=32)
    specs = aot_specs(config)
    assert [spec.name for spec in specs] == ["lion_chunked_states", "lion_chunked_out"]
    assert specs[1].runs_after == ("lion_chunked_states",)
    shape = ProblemShape(batch=B, heads=H, length=70, dk=24, dv=80)
    # states: 32-wide tiles of (dk, dv) = (24, 80) -> 1 x 3, both directions; chunks: ceil(70 / 32) x B*H x 3 dv
    # tiles (dv pads to 128 > 64, so the chunk kernels use 32-wide tiles)
    assert [spec.grid(shape) for spec in specs] == [(B * H, 3, 2), (3, B * H, 3)]
    q, k, v, a = make_inputs("selective", 70, seed=1, dk=24, dv=80)
    buffers = {"q": q.to(DEVICE), "k": k.to(DEVICE), "v": v.to(DEVICE), "log_decay": a.to(DEVICE)}
    for spec in specs:
        assert list(spec.signature) == list(spec.fn.arg_names)   # names and order are the kernel's parameters
        args = []
        for arg in spec.args:
            if arg.role == "scalar":
                args.append(arg.value(shape))
                continue
            if arg.role == "output":
                assert arg.name not in buffers, arg.name
                # unwritten words would show
                buffers[arg.name] = torch.full(arg.shape(shape), float("nan"), device=DEVICE)
            tensor = buffers[arg.name]
            assert tuple(tensor.shape) == arg.shape(shape) and arg.dtype == "fp32"
            args.append(tensor)
        spec.fn[spec.grid(shape)](*args, **spec.constexprs, num_warps=spec.num_warps)
    assert rel_err(buffers["y"].cpu(), reference_attention(q, k, v, a, eps=EPS)) <= 1e-4


@pytest.mark.parametrize("change, message", [
    ({"chunk_size": 0}, "chunk_size"),
    ({"dk": 129}, "head dims"),
    ({"a_dtype": torch.float16}, "log decays"),
    ({"a_shape": (B, H, 5)}, "expected q, k"),
])
def test_bad_input_is_a_clear_error(change: dict, message: str) -> None:
    q, k, v, a = make_inputs("selective", 7, seed=0, dk=change.get("dk", D))
    a = a.to(change.get("a_dtype", torch.float32))
    if "a_shape" in change:
        a = torch.zeros(change["a_shape"])
    with pytest.raises(ValueError, match=message):
        chunked(q, k, v, a, normalize=True, eps=EPS, chunk_size=change.get("chunk_size", 16))


def test_any_chunk_size_runs_on_the_kernels_chunks() -> None:
    """A chunk size the kernels lack (a model configured for the PyTorch form) runs on the next kernel chunk."""
    q, k, v, a = make_inputs("selective", 40, seed=9)
    ref = reference_attention(q, k, v, a, eps=EPS)
    for chunk in (1, 8, 48, 1000):
        assert rel_err(chunked(q, k, v, a, normalize=True, eps=EPS, chunk_size=chunk), ref) <= 1e-4


def test_too_many_heads_is_a_clear_error() -> None:
    """B * H is the chunk kernels' grid y, which CUDA caps at 65535: refused before any launch."""
    q = torch.rand(65536, 1, 3, 16)
    with pytest.raises(ValueError, match="B \\* H <= 65535"):
        chunked(q, q, q, torch.zeros(65536, 1, 3), normalize=True, eps=EPS, chunk_size=16)


def test_kernel_chunk_follows_the_request_and_fits_shared_memory() -> None:
    """Requests round up to a kernel chunk; fp32 / fp64 above head dim 64 run at chunk <= 32 (shared memory)."""
    assert [kernel_chunk_size(c, 64, 64, ieee=True) for c in (1, 16, 17, 64, 100, 1000)] == [16, 16, 32, 64, 128, 128]
    assert kernel_chunk_size(64, 128, 64, ieee=True) == kernel_chunk_size(64, 64, 80, ieee=True) == 32
    assert kernel_chunk_size(64, 128, 128, ieee=False) == 64
    with pytest.raises(ValueError, match="positive integer"):
        kernel_chunk_size(0, 64, 64, ieee=False)


def test_cpu_tensors_need_the_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    q, k, v, a = make_inputs("lit", 7, seed=0)
    with pytest.raises(ValueError, match="TRITON_INTERPRET"):
        lion_chunked(q, k, v, a, normalize=True, eps=EPS, chunk_size=16)


@pytest.mark.skipif(not torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1",
                    reason="needs a CUDA GPU (the Triton interpreter does not support bf16)")
@pytest.mark.parametrize("variant", VARIANTS)
def test_bf16_on_gpu(variant: str) -> None:
    """bf16 inputs (fp32 inside): the error is bf16's output rounding, 2^-8 relative per element, twice where dden is
    formed from the bf16 y. Emulated on the CPU (fp32 kernels, y and gradients rounded to bf16, dden from the bf16 y,
    this test's inputs): at most 3.7e-3 (dq, dv)."""
    q, k, v, a = make_inputs(variant, 197, seed=4, dtype=torch.bfloat16)
    dy = torch.randn(B, H, 197, D).bfloat16()
    y, grads = kernel_grads(q, k, v, a, dy, True, 64)
    ref_y, ref_grads = reference_grads(q, k, v, a, dy, True)
    assert rel_err(y, ref_y) <= 8e-3
    _assert_grads_close(grads, ref_grads, 8e-3, 197, True)


def test_closing_gates_keep_fp32_precision() -> None:
    """LION-S with gates that close (a down to -60, a saturated sigmoid) among near-1 decays (a ~ -0.005): the
    intra-chunk exponents are direct sums over each pair's span, so the chunk size does not matter. Measured
    2.9e-7 (c = 16) and 1.1e-7 (c = 128) relative, as for the PyTorch chunked form; exponents taken as differences
    of chunk-local cumsums (up to ~c * 60) gave 4.2e-6 and 9.8e-6, growing with the chunk."""
    gen = torch.Generator().manual_seed(0)
    q, k = (torch.rand(1, 2, 256, D, generator=gen) for _ in range(2))
    v = torch.randn(1, 2, 256, D, generator=gen)
    a = -0.01 * torch.rand(1, 2, 256, generator=gen)
    a = torch.where(torch.rand(1, 2, 256, generator=gen) < 0.2, -60 * torch.rand(1, 2, 256, generator=gen), a)
    ref = reference_attention(q, k, v, a, eps=EPS)
    for chunk in (16, 128):
        assert rel_err(chunked(q, k, v, a, normalize=True, eps=EPS, chunk_size=chunk), ref) <= 1e-6
