"""The AOT `lion::SelectiveScan` plugin for standard TensorRT >= 10.9: the engine embeds PTX and runs without Python.

TensorRT's decorator API (`tensorrt.plugin`, standard TensorRT >= 10.9) describes the plugin in Python at
build time and asks `aot_impl` for a kernel name, PTX, launch parameters and extra int32 scalars; the engine then
holds the PTX and TensorRT launches it itself (trtexec, the C++ runtime). The PTX is the scan kernel of
kernels/scan.py compiled by the existing AOT path (kernels/aot/compiler.py), whose calling convention is exactly what
TensorRT passes: input pointers (q, k, v, log_decay), the int32 scalars (L), output pointers, with the hidden Triton
parameters stripped. The kernel's two fp32 scratch buffers have to be outputs on this path (a decorator plugin has
no workspace): the plugin declares three outputs (y, num_scratch, den_scratch) and the ONNX node maps the first; the
parser leaves the other two unnamed. Facts the decorator API imposes (read in the 10.9 .. 11.4 sources):
attributes reach `aot_impl` positionally in registration order, the function ends with `outputs, tactic` and carries
a return annotation, extra scalars are SymInt32 only (eps and normalize are baked in as constexprs, so one PTX per
(type, head dims, normalize, eps)), and attributes are not stored in the engine.

TensorRT-RTX has none of this (no `tensorrt.plugin`, no AOT plugin classes): it uses the class-based plugin.
The plain functions here (kernel choice, target, launch rule) are what the decorated functions call, testable
without TensorRT.
"""
# No `from __future__ import annotations` here: tensorrt.plugin validates the decorated functions' annotations as
# objects (inspect.signature), so they must not be strings.
import hashlib
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from lion_export.dtypes import DTYPES, from_tensorrt
from lion_export.kernels.aot.specs import KernelConfig, ProblemShape, dv_tiles
from lion_export.kernels.aot.compiler import CompiledKernel, compile_kernels
from lion_export.kernels.aot.cuda_targets import TARGETS
from lion_export.plugins.selective_scan import is_registered
from lion_export.scan_op import PLUGIN_ID

#: the kernel of kernels/scan.py that backs the node on this path
SCAN_KERNEL = "lion_scan_fwd"
#: the oldest standard TensorRT with `tensorrt.plugin.aot_impl`
MIN_TENSORRT = (10, 9)
#: the plugin's outputs in kernel order: y, then the scratch buffers the kernel writes
OUTPUTS = ("y", "num_scratch", "den_scratch")

_lock = threading.Lock()
_registered: set[str] = set()
_bundles: list[Path] = []           # kernel bundles aot_impl looks in before compiling


@dataclass(frozen=True)
class ScanLaunch:
    """What `aot_impl` returns for one (type, head dims, attributes) on one GPU, with grid x = B * H symbolic."""

    entry: str              # the PTX .entry name
    ptx: str
    grid_y: int             # dv tiles: ceil(dv / BLOCK_DV)
    block_x: int            # threads per block
    shared_mem: int         # bytes per block


def tensorrt_version(trt: ModuleType) -> tuple[int, int]:
    major, minor = (int(part) for part in trt.__version__.split(".")[:2])
    return major, minor


def aot_unavailable_reason(trt: ModuleType) -> str | None:
    """Why `trt` cannot take the AOT plugin, or None when it can."""
    if not hasattr(trt, "QuickPluginCreationRequest") or trt.__name__ != "tensorrt":
        return (f"the AOT plugin needs standard TensorRT >= {MIN_TENSORRT[0]}.{MIN_TENSORRT[1]} (tensorrt.plugin); "
                f"{trt.__name__} {getattr(trt, '__version__', '?')} has no AOT plugins")
    if tensorrt_version(trt) < MIN_TENSORRT:
        return (f"the AOT plugin needs standard TensorRT >= {MIN_TENSORRT[0]}.{MIN_TENSORRT[1]} (tensorrt.plugin), "
                f"found {trt.__version__}")
    return None


def aot_target(capability: int) -> str:
    """The compile target for a GPU of compute capability `capability` (86 for sm_86): the GPU's own when listed in
    kernels/aot/cuda_targets.py, else the newest listed one below it whose PTX is not architecture-specific (the driver
    JIT-compiles PTX forward, but sm_90's PTX is sm_90a, which runs on Hopper only)."""
    exact = f"sm_{capability}"
    if exact in TARGETS:
        return exact
    portable = [t for t in TARGETS.values() if t.capability < capability and t.capability != 90]
    if not portable:
        raise ValueError(f"no compile target for compute capability {capability}; known: {', '.join(TARGETS)}")
    return max(portable, key=lambda t: t.capability).name


def kernel_config(value_type: str, dk: int, dv: int, normalize: bool, eps: float) -> KernelConfig:
    """The compile-time choices for one node: element type (a TensorRT DataType name), head dims (build-time
    constants on this path), and the attributes baked in."""
    try:
        element_type = from_tensorrt(value_type).name
    except ValueError:
        raise ValueError(f"SelectiveScan takes q, k, v as {', '.join(d.tensorrt for d in DTYPES.values())}; got "
                         f"{value_type}") from None
    return KernelConfig(dtype=element_type, head_dim=dk, head_dim_v=dv, normalize=bool(normalize),
                        eps=float(eps))


@lru_cache(maxsize=32)
def compiled_scan(config: KernelConfig, target: str) -> CompiledKernel:
    """The scan kernel for `config` compiled for `target` (once per process and pair: builds ask repeatedly)."""
    (kernel,) = compile_kernels(target, config, only=(SCAN_KERNEL,))
    return kernel


def scan_launch(kernel: CompiledKernel) -> ScanLaunch:
    """The launch rule of a compiled scan kernel, without the batch: its grid is (B * H, tiles, 1) for every B, H, L
    (checked on two shapes, so a kernel with another grid rule is refused rather than launched wrongly)."""
    config_dims = kernel.spec.constexprs["DK"], kernel.spec.constexprs["DV"]
    grids = {shape: kernel.spec.grid(ProblemShape(*shape, *config_dims)) for shape in ((1, 1, 1), (2, 3, 5))}
    if any(grid[0] != b * h or grid[2] != 1 for (b, h, _), grid in grids.items()) or \
            len({grid[1] for grid in grids.values()}) != 1:
        raise ValueError(f"{kernel.spec.name}: grid {kernel.spec.grid_formula} is not (B * H, tiles, 1)")
    launch = kernel.launch(ProblemShape(1, 1, 1, *config_dims))
    return ScanLaunch(entry=kernel.entry, ptx=kernel.ptx, grid_y=grids[(1, 1, 1)][1], block_x=launch.block[0],
                      shared_mem=launch.shared_mem)


def _same_eps(a: float, b: float) -> bool:
    """eps reaches the plugin as a float32 node attribute: compare at that precision."""
    return bool(np.float32(a) == np.float32(b))


def bundled_scan(bundle: Path, config: KernelConfig, target: str) -> ScanLaunch | None:
    """The scan kernel for `config` and `target` from a kernel bundle (`lion-export compile-kernels --out DIR`:
    manifest.json + PTX, kernels/aot/bundle.py), or None when the bundle was made for another target or config.
    ValueError when the bundle matches but cannot be used as is (a damaged PTX file, another calling convention)."""
    from lion_export.kernels.aot.bundle import FORMAT, MANIFEST

    manifest = json.loads((Path(bundle) / MANIFEST).read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{bundle}: not a {FORMAT} kernel bundle (format {manifest.get('format')!r})")
    made = manifest["config"]
    if manifest["target"]["name"] != target or (made["dtype"], made["head_dim"], made["head_dim_v"] or
                                                 made["head_dim"], bool(made["normalize"])) != \
            (config.dtype, config.dk, config.dv, config.normalize) or not _same_eps(made["eps"], config.eps):
        return None
    kernel = next((k for k in manifest["kernels"] if k["name"] == SCAN_KERNEL), None)
    if kernel is None:
        return None
    roles = [arg["role"] for arg in kernel["arguments"]]
    if roles != ["input"] * 4 + ["scalar"] + ["output"] * len(OUTPUTS) or kernel["hidden_params"] or \
            kernel["launch"]["grid"][0] != "B * H" or kernel["launch"]["shared_mem_opt_in"]:
        raise ValueError(f"{bundle}: {SCAN_KERNEL} does not follow TensorRT's AOT calling convention "
                         f"(arguments {roles}, hidden {kernel['hidden_params']}, grid {kernel['launch']['grid']})")
    ptx = (Path(bundle) / kernel["ptx"]).read_text()
    if hashlib.sha256(ptx.encode()).hexdigest() != kernel["ptx_sha256"]:
        raise ValueError(f"{bundle}: {kernel['ptx']} does not match the manifest's sha256")
    constexprs = kernel["constexprs"]
    return ScanLaunch(entry=kernel["entry"], ptx=ptx, grid_y=dv_tiles(constexprs["DV"], constexprs["BLOCK_DV"]),
                      block_x=kernel["launch"]["block"][0], shared_mem=kernel["launch"]["shared_mem_bytes"])


def scan_for(config: KernelConfig, target: str, bundles: Sequence[Path] = ()) -> ScanLaunch:
    """What aot_impl returns for one node: the first bundle's kernel that matches, else one compiled now."""
    for bundle in bundles:
        found = bundled_scan(bundle, config, target)
        if found is not None:
            return found
    return scan_launch(compiled_scan(config, target))


def _constant(dim: Any, what: str) -> int:
    """A head dim from a shape expression: it must be a build-time constant here (it is baked into the PTX)."""
    if dim.is_fake or not dim.is_constant:
        raise ValueError(f"the AOT SelectiveScan plugin needs a static {what} (it is compiled into the kernel)")
    return int(dim.constant_value())


def _current_capability() -> int:
    """The compute capability of the GPU TensorRT builds on (standard TensorRT builds on the device it targets)."""
    import triton

    return int(triton.runtime.driver.active.get_current_target().arch)


def _define(trtp: ModuleType, trt: ModuleType) -> None:
    """Apply the decorators: registration happens at @trtp.register (eagerly, so the ONNX parser finds it)."""

    @trtp.register(PLUGIN_ID)
    def selective_scan_desc(q: trtp.TensorDesc, k: trtp.TensorDesc, v: trtp.TensorDesc, log_decay: trtp.TensorDesc,
                            normalize: int, eps: float
                            ) -> tuple[trtp.TensorDesc, trtp.TensorDesc, trtp.TensorDesc]:
        batch, heads, length, dv = (v.shape_expr[i] for i in range(4))
        tiles = 1
        if not dv.is_fake:          # shapes are real only in the shape pass; the type pass needs none
            from lion_export.kernels.scan import scratch_shapes

            tiles = scratch_shapes(ProblemShape(1, 1, 1, _constant(q.shape_expr[3], "dk"),
                                                _constant(dv, "dv")))["den_scratch"][2]
        num = trtp.from_shape_expr((batch, heads, length, dv), dtype=trt.DataType.FLOAT)
        den = trtp.from_shape_expr((batch, heads, tiles, length), dtype=trt.DataType.FLOAT)
        return v.like(), num, den

    @trtp.aot_impl(PLUGIN_ID)
    def selective_scan_aot(q: trtp.TensorDesc, k: trtp.TensorDesc, v: trtp.TensorDesc, log_decay: trtp.TensorDesc,
                           normalize: int, eps: float, outputs: tuple[trtp.TensorDesc], tactic: int
                           ) -> tuple[str | bytes, str | bytes, trtp.KernelLaunchParams, trtp.SymIntExprs]:
        config = kernel_config(q.dtype.name, _constant(q.shape_expr[3], "dk"), _constant(v.shape_expr[3], "dv"),
                               bool(normalize), eps)
        launch = scan_for(config, aot_target(_current_capability()), tuple(_bundles))
        params = trtp.KernelLaunchParams()
        params.grid_x = q.shape_expr[0] * q.shape_expr[1]
        params.grid_y = launch.grid_y
        params.block_x = launch.block_x
        params.shared_mem = launch.shared_mem
        scalars = trtp.SymIntExprs(1)
        scalars[0] = trtp.SymInt32(q.shape_expr[2])          # L, the kernel's one int32 argument
        return launch.entry, launch.ptx, params, scalars


def register_selective_scan_aot(trt: ModuleType, bundles: Sequence[Path] = ()) -> None:
    """Register the AOT plugin with standard TensorRT's decorator API (see lion_export.plugins.register_aot)."""
    reason = aot_unavailable_reason(trt)
    if reason:
        raise RuntimeError(reason)
    with _lock:
        _bundles.extend(Path(b) for b in bundles if Path(b) not in _bundles)
        if trt.__name__ in _registered:
            return
        if is_registered(trt):
            raise RuntimeError(f"the class-based {PLUGIN_ID} plugin is already registered in "
                               "this process; a process can hold only one of the two")
        import tensorrt.plugin as trtp

        _define(trtp, trt)
        _registered.add(trt.__name__)


__all__ = ["MIN_TENSORRT", "OUTPUTS", "SCAN_KERNEL", "ScanLaunch", "aot_target", "aot_unavailable_reason",
           "bundled_scan", "compiled_scan", "kernel_config", "register_selective_scan_aot", "scan_for", "scan_launch",
           "tensorrt_version"]
