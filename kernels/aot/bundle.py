"""A directory of compiled kernels for launchers outside Python: one .ptx and .cubin per kernel + manifest.json.

The manifest says everything a C++ launcher (or TensorRT's AOT plugin) needs and nothing it must guess: entry names,
the PTX parameter list with each parameter's meaning (including the hidden ones Triton appends), the constexprs
baked in, threads per block, shared memory, and the grid and every buffer size as formulas over B, H, L, dk, dv.

Files are written one by one through a temporary name and an atomic rename, the manifest last: a directory with a
manifest.json always holds the complete set it lists, even after an interrupted run.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from lion_export.atomic import write_bytes_atomically
from lion_export.kernels.aot.specs import KernelConfig, ProblemShape
from lion_export.kernels.aot.compiler import POINTER_ALIGNMENT, CompiledKernel
from lion_export.kernels.aot.cuda_targets import min_cuda_driver, ptx_version_text, ptxas_cuda_version

MANIFEST = "manifest.json"
FORMAT = "lion-export-kernels/1"
#: what Triton's own launcher passes in the parameters it appends, in order (triton/backends/nvidia/driver.py)
_HIDDEN_MEANING = ("global scratch pointer", "profile scratch pointer")
_SCRATCH_FIELD = ("global_scratch_size", "profile_scratch_size")


def _hidden_param(kernel: CompiledKernel, index: int) -> dict:
    param = kernel.hidden_params[index]
    entry = {"ptx_param": param.name, "ptx_type": param.type}
    if index < len(_HIDDEN_MEANING):
        size = getattr(kernel, _SCRATCH_FIELD[index])
        entry["meaning"] = _HIDDEN_MEANING[index]
        entry["bytes_per_program"] = size
        entry["pass"] = ("null (the kernel does not use it)" if size == 0 else
                         f"a buffer of {size} bytes x (grid_x * grid_y * grid_z)")
    return entry


def _kernel_entry(kernel: CompiledKernel, config: KernelConfig) -> dict:
    spec = kernel.spec
    arguments = []
    for arg, param in zip(spec.args, kernel.ptx_params):
        described = {"name": arg.name, "role": arg.role, "ptx_param": param.name, "ptx_type": param.type}
        if arg.role == "scalar":
            described.update(type="int32", value=arg.formula)
        else:
            described.update(dtype=arg.dtype, shape=arg.shape_formula, layout="contiguous")
        arguments.append(described)
    return {
        "name": spec.name,
        "entry": kernel.entry,
        "ptx_target": kernel.ptx_target,
        "ptx": f"{spec.name}.ptx",
        "cubin": f"{spec.name}.cubin",
        "ptx_sha256": hashlib.sha256(kernel.ptx.encode()).hexdigest(),
        "arguments": arguments,
        # parameters Triton appended that the code reads: a launcher must pass them (none for our kernels)
        "hidden_params": [_hidden_param(kernel, i) for i in range(len(kernel.hidden_params))],
        # parameters Triton appended that the code never reads, removed from the PTX (and the cubin rebuilt from it)
        # so the entry declares exactly "arguments"
        "stripped_hidden_params": list(kernel.stripped_params),
        "constexprs": spec.constexprs,
        # launch these first (same problem shape): their outputs of the same name are this kernel's inputs
        "runs_after": list(spec.runs_after),
        "num_warps": spec.num_warps,
        "num_stages": spec.num_stages,
        "threads_per_block": spec.threads_per_block,
        "launch": {"grid": list(spec.grid_formula), "block": [spec.threads_per_block, 1, 1],
                   "shared_mem_bytes": kernel.shared_mem,
                   # true: call cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES, shared_mem_bytes) before launching
                   "shared_mem_opt_in": kernel.needs_shared_mem_opt_in},
        # a worked example, so a launcher can check its own arithmetic
        "example": _example(kernel, ProblemShape(batch=2, heads=3, length=197, dk=config.dk, dv=config.dv)),
    }


def _example(kernel: CompiledKernel, shape: ProblemShape) -> dict:
    return {"shape": asdict(shape), **launch_of(kernel, shape)}


def launch_of(kernel: CompiledKernel, shape: ProblemShape) -> dict:
    """Grid, block, shared memory and every buffer's shape for one problem shape, as plain data."""
    launch = kernel.launch(shape)
    return {"grid": list(launch.grid), "block": list(launch.block), "shared_mem_bytes": launch.shared_mem,
            "buffers": {arg.name: list(arg.shape(shape)) for arg in kernel.spec.args if arg.role != "scalar"},
            "scalars": {arg.name: arg.value(shape) for arg in kernel.spec.args if arg.role == "scalar"}}


def manifest(kernels: list[CompiledKernel], config: KernelConfig) -> dict:
    """The manifest.json content for kernels compiled for one target and config."""
    if not kernels:
        raise ValueError("no kernels to describe")
    target = kernels[0].target
    return {
        "format": FORMAT,
        "target": {"name": target.name, "compute_capability": target.capability, "devices": target.devices},
        "ptx_version": ptx_version_text(kernels[0].ptx_version),
        # the oldest CUDA driver that can load (JIT-compile) the PTX
        "min_cuda_driver": min_cuda_driver(kernels[0].ptx_version),
        # the cubins come from this ptxas: they load on drivers of the same CUDA major version (or newer)
        "cubin_ptxas_cuda": ptxas_cuda_version(target),
        "triton_version": kernels[0].triton_version,
        "config": asdict(config),
        "calling_convention": ("kernel(input pointers..., int32 scalars..., output pointers..., hidden params if "
                               "any); all tensors contiguous; B, H, dk, dv are baked in or implied by the grid"),
        "pointer_alignment_bytes": POINTER_ALIGNMENT,
        "kernels": [_kernel_entry(kernel, config) for kernel in kernels],
    }


def write_kernel_bundle(out_dir: Path, kernels: list[CompiledKernel], config: KernelConfig) -> Path:
    """Write the .ptx/.cubin files then manifest.json into out_dir (created if needed); returns the manifest path.

    An earlier bundle's manifest is removed before any kernel file is replaced and the new one is written last,
    so whenever a manifest exists it describes the files beside it, even after an interrupted run.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} exists and is not a directory")
    content = manifest(kernels, config)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST).unlink(missing_ok=True)
    for kernel in kernels:
        write_bytes_atomically(out_dir / f"{kernel.spec.name}.ptx", kernel.ptx.encode())
        write_bytes_atomically(out_dir / f"{kernel.spec.name}.cubin", kernel.cubin)
    path = out_dir / MANIFEST
    write_bytes_atomically(path, (json.dumps(content, indent=2) + "\n").encode())
    return path
