"""The AOT-compiled kernels launched as a launcher without Python launches them (TensorRT's AOT plugin, a C++ user):
through the CUDA driver API, from the cubin and, separately, from the PTX (which the driver JIT-compiles), using only
what the spec and the compiled metadata say: entry name, argument order, buffer shapes and dtypes, grid, threads per
block, shared memory (with the opt-in above 48 KiB). y is compared with the float64 parallel form.

Generic over the registry: each kernel module's `aot_specs(config)` is launched in its order, with buffers shared by
argument name (an earlier kernel's output, such as a workspace, is a later kernel's input of the same name). Outputs
start as NaN, as TensorRT's uninitialised memory might, so a kernel that reads what nobody wrote shows. Needs a CUDA
GPU whose architecture is a registered target; skipped otherwise.
"""
from __future__ import annotations

import ctypes
import importlib

import pytest
import torch
import torch.nn.functional as F

from lion_export import lion_attention
from lion_export.dtypes import torch_dtype
from lion_export.kernels.aot.specs import KERNEL_MODULES, KernelConfig, ProblemShape, ScalarArg
from lion_export.kernels.aot.compiler import CompiledKernel, compile_kernels
from lion_export.kernels.aot.cuda_targets import TARGETS

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="launches compiled kernels through the CUDA driver API: needs a CUDA GPU")

#: fp32 with both normalisations' default; fp16 without normalising, dk != dv (masked tiles) and another chunk size
CONFIGS = [KernelConfig(dtype="fp32", head_dim=64),
           KernelConfig(dtype="fp16", head_dim=32, head_dim_v=48, normalize=False, chunk_size=32)]
SHAPES = [(2, 3, 197), (1, 1, 1)]            # (B, H, L): a ragged last chunk, and a single token
TOLERANCE = {"fp32": 1e-4, "fp16": 5e-3, "bf16": 3e-2}   # relative error of y against the float64 reference
# CUDA driver API enums (cuda.h): CUfunction_attribute, CUjit_option
CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8
CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 5, 6

_ptr, _uint = ctypes.c_void_p, ctypes.c_uint
_SIGNATURES = {   # argument types, so that 64-bit handles are never truncated to a C int
    "cuInit": [_uint],
    "cuGetErrorName": [ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)],
    "cuDeviceGet": [ctypes.POINTER(ctypes.c_int), ctypes.c_int],
    "cuDevicePrimaryCtxRetain": [ctypes.POINTER(_ptr), ctypes.c_int],
    "cuCtxSetCurrent": [_ptr],
    "cuModuleLoadDataEx": [ctypes.POINTER(_ptr), _ptr, _uint, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(_ptr)],
    "cuModuleGetFunction": [ctypes.POINTER(_ptr), _ptr, ctypes.c_char_p],
    "cuFuncSetAttribute": [_ptr, ctypes.c_int, ctypes.c_int],
    "cuLaunchKernel": [_ptr, _uint, _uint, _uint, _uint, _uint, _uint, _uint, _ptr, ctypes.POINTER(_ptr),
                       ctypes.POINTER(_ptr)],
    "cuModuleUnload": [_ptr],
}


class Driver:
    """The few CUDA driver calls a launcher makes, on the primary context of torch's device (the one torch uses)."""

    def __init__(self) -> None:
        self.lib = ctypes.CDLL("libcuda.so.1")
        for name, argtypes in _SIGNATURES.items():
            getattr(self.lib, name).argtypes = argtypes
            getattr(self.lib, name).restype = ctypes.c_int
        self.check(self.lib.cuInit(0), "cuInit")
        device, context = ctypes.c_int(), _ptr()
        self.check(self.lib.cuDeviceGet(ctypes.byref(device), torch.cuda.current_device()), "cuDeviceGet")
        self.check(self.lib.cuDevicePrimaryCtxRetain(ctypes.byref(context), device), "cuDevicePrimaryCtxRetain")
        self.check(self.lib.cuCtxSetCurrent(context), "cuCtxSetCurrent")

    def check(self, result: int, call: str, detail: str = "") -> None:
        if result != 0:
            name = ctypes.c_char_p()
            self.lib.cuGetErrorName(result, ctypes.byref(name))
            raise RuntimeError(f"{call} failed: {name.value.decode() if name.value else result} {detail}".strip())

    def load(self, image: bytes) -> _ptr:
        """A module from a cubin, or from NUL-terminated PTX (JIT-compiled by the driver; its error log kept)."""
        log = ctypes.create_string_buffer(16384)
        options = (ctypes.c_int * 2)(CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES)
        values = (_ptr * 2)(ctypes.cast(log, _ptr), _ptr(len(log)))
        module = _ptr()
        result = self.lib.cuModuleLoadDataEx(ctypes.byref(module), ctypes.create_string_buffer(image), 2, options,
                                             values)
        self.check(result, "cuModuleLoadDataEx", log.value.decode(errors="replace"))
        return module

    def launch(self, kernel: CompiledKernel, image: str, shape: ProblemShape, args: list) -> None:
        """One launch on torch's current stream, waited for; the module is unloaded afterwards."""
        module = self.load(kernel.cubin if image == "cubin" else kernel.ptx.encode())
        try:
            function = _ptr()
            self.check(self.lib.cuModuleGetFunction(ctypes.byref(function), module, kernel.entry.encode()),
                       "cuModuleGetFunction", kernel.entry)
            if kernel.needs_shared_mem_opt_in:
                self.check(self.lib.cuFuncSetAttribute(function, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                                       kernel.shared_mem), "cuFuncSetAttribute", kernel.entry)
            launch = kernel.launch(shape)
            params = (_ptr * len(args))(*[_ptr(ctypes.addressof(arg)) for arg in args])
            stream = _ptr(torch.cuda.current_stream().cuda_stream)
            self.check(self.lib.cuLaunchKernel(function, *launch.grid, *launch.block, launch.shared_mem, stream,
                                               params, None), "cuLaunchKernel", kernel.entry)
            torch.cuda.synchronize()
        finally:
            self.check(self.lib.cuModuleUnload(module), "cuModuleUnload")


@pytest.fixture(scope="module")
def driver() -> Driver:
    return Driver()


@pytest.fixture(scope="module")
def target_name() -> str:
    major, minor = torch.cuda.get_device_capability()
    name = f"sm_{major}{minor}"
    if name not in TARGETS:
        pytest.skip(f"this GPU ({torch.cuda.get_device_name()}, {name}) is not a registered target ({list(TARGETS)})")
    return name


@pytest.fixture(scope="module", params=CONFIGS, ids=lambda c: f"{c.dtype}-dk{c.dk}-dv{c.dv}-norm{int(c.normalize)}")
def compiled(request, target_name: str) -> tuple[KernelConfig, dict[str, CompiledKernel]]:
    config = request.param
    return config, {kernel.spec.name: kernel for kernel in compile_kernels(target_name, config)}


def _problem(config: KernelConfig, shape: ProblemShape) -> dict[str, torch.Tensor]:
    """The problem inputs in float64, already rounded to what the kernels take (q, k, v in the config's dtype, the
    log decays in fp32), so the comparison measures the kernels' arithmetic only."""
    gen = torch.Generator().manual_seed(shape.length)
    full = (shape.batch, shape.heads, shape.length)
    q, k = (F.elu(torch.randn(*full, shape.dk, generator=gen, dtype=torch.float64)) + 1 for _ in range(2))
    v = torch.randn(*full, shape.dv, generator=gen, dtype=torch.float64)
    log_decay = F.logsigmoid(torch.randn(*full, generator=gen, dtype=torch.float64) + 3)   # LION-S: one per token
    rounded = {name: x.to(torch_dtype(config.dtype)).double() for name, x in (("q", q), ("k", k), ("v", v))}
    return {**rounded, "log_decay": log_decay.float().double()}


def _run_module(driver: Driver, kernels: list[CompiledKernel], image: str, shape: ProblemShape,
                problem: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Launch one module's kernels in order; buffers by argument name, inputs from `problem` or earlier outputs."""
    buffers: dict[str, torch.Tensor] = {}
    launched: list[str] = []
    for kernel in kernels:
        spec = kernel.spec
        assert set(spec.runs_after) <= set(launched), f"{spec.name} runs after {spec.runs_after}; launched {launched}"
        assert kernel.hidden_params == (), f"{spec.name} reads hidden parameters a launcher would have to pass"
        args: list = []
        for arg in spec.args:
            if isinstance(arg, ScalarArg):
                args.append(ctypes.c_int32(arg.value(shape)))
                continue
            dtype = torch_dtype(arg.dtype)
            if arg.name not in buffers:
                if arg.role == "input":
                    assert arg.name in problem, (f"{spec.name}: input {arg.name!r} is neither a problem input "
                                                 f"({list(problem)}) nor an output of an earlier kernel")
                    buffers[arg.name] = problem[arg.name].to(device="cuda", dtype=dtype).contiguous()
                else:
                    buffers[arg.name] = torch.full(arg.shape(shape), float("nan"), dtype=dtype, device="cuda")
            tensor = buffers[arg.name]
            assert (tuple(tensor.shape), tensor.dtype) == (tuple(arg.shape(shape)), dtype), (
                f"{spec.name}: {arg.name!r} is {arg.shape_formula} {arg.dtype}, but the buffer of that name is "
                f"{tuple(tensor.shape)} {tensor.dtype}")
            args.append(_ptr(tensor.data_ptr()))
        driver.launch(kernel, image, shape, args)
        launched.append(spec.name)
    return buffers


@pytest.mark.parametrize("image", ["cubin", "ptx"])
@pytest.mark.parametrize("module_name", KERNEL_MODULES)
def test_aot_kernels_launched_through_the_driver_match_the_reference(
        driver: Driver, compiled: tuple[KernelConfig, dict[str, CompiledKernel]], module_name: str,
        image: str) -> None:
    config, by_name = compiled
    specs = importlib.import_module(f"lion_export.kernels.{module_name}").aot_specs(config)
    kernels = [by_name[spec.name] for spec in specs]
    assert kernels, f"kernels/{module_name}.py registers no AOT kernels"
    for batch, heads, length in SHAPES:
        shape = ProblemShape(batch, heads, length, config.dk, config.dv)
        problem = _problem(config, shape)
        buffers = _run_module(driver, kernels, image, shape, problem)
        assert "y" in buffers, f"no kernel of {module_name} writes an output named 'y' ({list(buffers)})"
        y = buffers["y"].double().cpu()
        assert torch.isfinite(y).all(), f"{module_name} ({image}) left y unwritten or non-finite at {shape}"
        ref = lion_attention(problem["q"], problem["k"], problem["v"], problem["log_decay"], form="parallel",
                             normalize=config.normalize, eps=config.eps)
        err = ((y - ref).norm() / ref.norm()).item()
        assert err < TOLERANCE[config.dtype], f"{module_name} ({image}) at {shape}: relative error {err:.2e}"
