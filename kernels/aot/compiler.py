"""Compile registered kernels with `triton.compile` for a named GPU target, on any machine (no GPU needed).

Under TRITON_INTERPRET=1 (how the tests run on CPUs) `@triton.jit` yields interpreter functions that
`triton.compile` cannot take, so compilation then runs in a child Python with the variable removed: this module is
also that child's entry point (`python -m lion_export.kernels.aot.compiler`). The child writes each kernel's PTX,
cubin and metadata to a directory and prints its name when done, so the caller can show progress.

The result records what an AOT launcher must match: the PTX entry name and its parameter list, checked against the
spec's calling convention. Triton 3.x appends hidden parameters (global and profile scratch pointers) after the
declared ones. TensorRT's AOT path passes only (inputs, int32 scalars, outputs), so trailing hidden parameters that the
code never reads (our kernels use no scratch) are dropped from the `.entry` declaration and the cubin is re-assembled
from that PTX with Triton's bundled ptxas: the entry then declares exactly the documented parameters. A hidden
parameter the code does read is kept and reported in `hidden_params`, never silently dropped.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Collection

import triton
from triton.compiler import ASTSource
from triton.runtime.jit import JITFunction

from lion_export.kernels.aot.specs import KernelConfig, KernelSpec, ProblemShape, kernel_specs
from lion_export.kernels.aot.cuda_targets import (DEFAULT_PTX_VERSION, DEFAULT_SHARED_MEM, WARP_SIZE, Target,
                                                  check_ptx_version, target as lookup_target)

#: pointers of every tensor argument are promised 16-byte aligned (TensorRT and torch allocate at >= 256 bytes),
#: which lets Triton vectorise loads; a launcher must honour it
POINTER_ALIGNMENT = 16
_TARGET = re.compile(r"^\.target\s+(\w+)", re.M)
_ENTRY = re.compile(r"\.entry\s+(\w+)\s*\(([^)]*)\)", re.S)
_PARAM = re.compile(r"\.param\s+([^;,]*?)\s+(\w+)\s*(?:,|$)")


class KernelCompileError(RuntimeError):
    """A kernel did not compile, or its PTX does not match the calling convention its spec documents."""


@dataclass(frozen=True)
class PtxParam:
    name: str            # "lion_scan_fwd_param_0"
    type: str            # ".u64" or ".u32" (the PTX state-space type)
    pointer: bool        # declared `.ptr` (a global pointer)


@dataclass(frozen=True)
class LaunchParams:
    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    shared_mem: int


@dataclass(frozen=True)
class CompiledKernel:
    spec: KernelSpec
    target: Target
    entry: str                       # the PTX `.entry` name a launcher looks up
    stripped_params: tuple[str, ...]  # unused hidden parameters removed from Triton's PTX (names)
    ptx_target: str                  # the PTX `.target`: "sm_87", or "sm_90a" where Triton uses sm_90's extras
    ptx_version: int                 # the PTX ISA version (80 = 8.0), which decides the oldest driver that loads it
    ptx: str
    cubin: bytes
    ptx_params: tuple[PtxParam, ...]
    shared_mem: int                  # bytes of shared memory per block, independent of the problem shape
    global_scratch_size: int         # bytes per program Triton wants behind the hidden global-scratch pointer
    profile_scratch_size: int
    triton_version: str

    @property
    def needs_shared_mem_opt_in(self) -> bool:
        """Above 48 KiB a launcher must raise the kernel's dynamic shared memory limit before launching it."""
        return self.shared_mem > DEFAULT_SHARED_MEM

    @property
    def hidden_params(self) -> tuple[PtxParam, ...]:
        """The parameters Triton added after the spec's arguments; a launcher passes them (null when unused)."""
        return self.ptx_params[len(self.spec.args):]

    def describe(self) -> str:
        """One line for a person: entry, grid formula, threads, shared memory, PTX parameters."""
        return (f"{self.spec.name}: entry {self.entry}, grid ({' x '.join(self.spec.grid_formula)}), "
                f"{self.spec.threads_per_block} threads, {self.shared_mem} B shared, {len(self.ptx_params)} PTX "
                f"params ({len(self.hidden_params)} hidden, {len(self.stripped_params)} unused hidden dropped)")

    def launch(self, shape: ProblemShape) -> LaunchParams:
        """Grid, block and shared memory for one problem shape: a pure function of the shapes."""
        return LaunchParams(grid=self.spec.grid(shape), block=(WARP_SIZE * self.spec.num_warps, 1, 1),
                            shared_mem=self.shared_mem)


def parse_ptx_params(ptx: str, entry: str) -> tuple[PtxParam, ...]:
    """The parameter list of `.entry entry(...)` in a PTX module."""
    for name, params in _ENTRY.findall(ptx):
        if name == entry:
            return tuple(PtxParam(name=pname, type=decl.split()[0], pointer=".ptr" in decl.split())
                         for decl, pname in _PARAM.findall(params))
    raise KernelCompileError(f"PTX has no .entry {entry!r}")


def _check_convention(spec: KernelSpec, params: tuple[PtxParam, ...]) -> None:
    """The first PTX parameters must be the spec's arguments: pointers for tensors, 32-bit for int32 scalars."""
    if len(params) < len(spec.args):
        raise KernelCompileError(f"{spec.name}: PTX declares {len(params)} parameters, the spec documents "
                                 f"{len(spec.args)} ({', '.join(a.name for a in spec.args)})")
    for arg, param in zip(spec.args, params):
        expected = (".u32", False) if arg.role == "scalar" else (".u64", True)
        if (param.type, param.pointer) != expected:
            raise KernelCompileError(f"{spec.name}: argument {arg.name!r} compiled to PTX {param.type}"
                                     f"{' .ptr' if param.pointer else ''}, expected {expected[0]}")


def _triton_attrs(spec: KernelSpec) -> dict[tuple[int], list[list]]:
    return {(index,): [["tt.divisibility", POINTER_ALIGNMENT]]
            for index, arg in enumerate(spec.args) if arg.role != "scalar"}


def _unused_trailing_params(ptx: str, entry: str, keep: int) -> list[str]:
    """Names of the parameters after the first `keep` that the PTX never mentions beyond their declaration,
    as the longest such suffix of the parameter list (dropping a suffix moves no other parameter)."""
    unused: list[str] = []
    for param in reversed(parse_ptx_params(ptx, entry)[keep:]):
        if len(re.findall(rf"\b{param.name}\b", ptx)) != 1:
            break
        unused.insert(0, param.name)
    return unused


def _drop_params(ptx: str, entry: str, names: list[str]) -> str:
    """The PTX with those parameters removed from the `.entry entry(...)` declaration."""
    for match in _ENTRY.finditer(ptx):
        if match.group(1) == entry:
            kept = [f"\t.param {decl} {name}" for decl, name in _PARAM.findall(match.group(2)) if name not in names]
            header = f".entry {entry}(\n" + ",\n".join(kept) + "\n)"
            return ptx[:match.start()] + header + ptx[match.end():]
    raise KernelCompileError(f"PTX has no .entry {entry!r}")


def _assemble(ptx: str, ptx_target: str, gpu: Target) -> bytes:
    """PTX -> cubin with the ptxas Triton ships (the flags Triton itself uses for line info and register allocation)."""
    from triton.backends.nvidia.compiler import get_ptxas

    with tempfile.TemporaryDirectory(prefix="lion-ptxas-") as tmp:
        src, out = Path(tmp) / "kernel.ptx", Path(tmp) / "kernel.cubin"
        src.write_text(ptx)
        cmd = [get_ptxas(gpu.capability).path, "-lineinfo", "--regAllocOptLevel=2", f"--gpu-name={ptx_target}",
               str(src), "-o", str(out)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            raise KernelCompileError(f"ptxas failed for {gpu.name}: {lines[-1] if lines else done.returncode}")
        return out.read_bytes()


def _ptx_target(ptx: str) -> str:
    found = _TARGET.search(ptx)
    return found.group(1) if found else ""


def _compile_raw(spec: KernelSpec, gpu: Target, ptx_version: int) -> dict:
    """Compile in this process (spec.fn must be a real JITFunction): the products as plain data."""
    source = ASTSource(spec.fn, spec.signature, constexprs=spec.constexprs, attrs=_triton_attrs(spec))
    try:
        compiled = triton.compile(source, target=gpu.gpu_target(),
                                  options={"num_warps": spec.num_warps, "num_stages": spec.num_stages,
                                           "enable_fp_fusion": True, "ptx_version": ptx_version})
    except Exception as err:  # Triton raises many types; the message is what the user needs
        raise KernelCompileError(f"{spec.name} failed to compile for {gpu.name}: {err}") from err
    meta = compiled.metadata
    ptx, cubin = compiled.asm["ptx"], compiled.asm["cubin"]
    unused = _unused_trailing_params(ptx, meta.name, len(spec.args))
    if unused:
        ptx = _drop_params(ptx, meta.name, unused)
        cubin = _assemble(ptx, _ptx_target(ptx), gpu)
    return {"entry": meta.name, "ptx": ptx, "cubin": cubin, "stripped_params": unused,
            "shared_mem": meta.shared, "global_scratch_size": meta.global_scratch_size,
            "profile_scratch_size": meta.profile_scratch_size, "triton_version": meta.triton_version}


def _selected_specs(config: KernelConfig, training: bool, only: Collection[str] | None) -> list[KernelSpec]:
    """The registry's specs for `config`, or just those named in `only` (ValueError for an unknown name)."""
    specs = kernel_specs(config, training)
    if only is None:
        return specs
    unknown = set(only) - {spec.name for spec in specs}
    if unknown:
        raise ValueError(f"unknown kernel(s) {sorted(unknown)}; registered: {[spec.name for spec in specs]}")
    return [spec for spec in specs if spec.name in only]


def _compile_in_child(specs: list[KernelSpec], gpu: Target, config: KernelConfig, ptx_version: int,
                      training: bool, progress: Callable[[str], None]) -> dict[str, dict]:
    """Run this module in a Python without TRITON_INTERPRET; read back the files it writes."""
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    # the child must import this very package tree (not, say, a source checkout in its working directory)
    package_root = str(Path(sys.modules[__package__.partition(".")[0]].__file__).parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    with tempfile.TemporaryDirectory(prefix="lion-aot-") as tmp:
        cmd = [sys.executable, "-m", __name__, "--target", gpu.name, "--ptx-version", str(ptx_version),
               "--config", json.dumps(dataclasses.asdict(config)), "--out", tmp,
               "--only", ",".join(spec.name for spec in specs)] + (["--training"] if training else [])
        # stdout carries one JSON line per event: {"done": name} or {"error": message} (other lines, such as
        # Triton's own reports, are skipped); stderr goes to a log whose last line explains a crash. The child runs
        # in the temp dir so that `-m` cannot pick up a source checkout in the current directory.
        log_path = Path(tmp) / "compile.log"
        with open(log_path, "w") as log, subprocess.Popen(cmd, env=env, cwd=tmp, stdout=subprocess.PIPE, stderr=log,
                                                          text=True) as child:
            assert child.stdout is not None
            error = None
            for line in child.stdout:
                try:
                    event = json.loads(line)
                except ValueError:
                    event = None
                if not isinstance(event, dict):
                    continue
                if "done" in event:
                    progress(event["done"])
                elif "error" in event:
                    error = event["error"]
        if error is None and child.returncode != 0:
            lines = [line for line in log_path.read_text().splitlines() if line.strip()]
            error = f"the compiler process failed: {lines[-1] if lines else f'exit status {child.returncode}'}"
        if error is not None:
            raise KernelCompileError(error)
        out = Path(tmp)
        raw = {}
        for spec in specs:
            meta = json.loads((out / f"{spec.name}.json").read_text())
            meta["ptx"] = (out / f"{spec.name}.ptx").read_text()
            meta["cubin"] = (out / f"{spec.name}.cubin").read_bytes()
            raw[spec.name] = meta
        return raw


def compile_kernels(target: str, config: KernelConfig, progress: Callable[[str], None] = lambda name: None,
                    ptx_version: int = DEFAULT_PTX_VERSION, training: bool = False,
                    only: Collection[str] | None = None) -> list[CompiledKernel]:
    """Every registered kernel for `config` (with `training`, the training-only ones too; with `only`, just the
    kernels of those names), compiled for `target` ("sm_87") as PTX of ISA `ptx_version` (80 = 8.0) and its cubin;
    `progress(name)` after each kernel."""
    gpu = lookup_target(target)
    check_ptx_version(gpu, ptx_version)
    specs = _selected_specs(config, training, only)
    if specs and not all(isinstance(spec.fn, JITFunction) for spec in specs):
        raw = _compile_in_child(specs, gpu, config, ptx_version, training, progress)
    else:
        raw = {}
        for spec in specs:
            raw[spec.name] = _compile_raw(spec, gpu, ptx_version)
            progress(spec.name)
    kernels = []
    for spec in specs:
        products = raw[spec.name]
        if products["shared_mem"] > gpu.max_shared_mem:
            raise KernelCompileError(f"{spec.name} needs {products['shared_mem']} bytes of shared memory, more than "
                                     f"{gpu.name}'s {gpu.max_shared_mem}")
        params = parse_ptx_params(products["ptx"], products["entry"])
        _check_convention(spec, params)
        products["stripped_params"] = tuple(products["stripped_params"])
        kernels.append(CompiledKernel(spec=spec, target=gpu, ptx_params=params, ptx_version=ptx_version,
                                      ptx_target=_ptx_target(products["ptx"]), **products))
    return kernels


def _child_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description="compile the LION kernels (internal: used by compile_kernels)")
    parser.add_argument("--target", required=True)
    parser.add_argument("--ptx-version", required=True, type=int)
    parser.add_argument("--config", required=True, help="KernelConfig fields as JSON")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--training", action="store_true", help="the training-only kernels too")
    parser.add_argument("--only", required=True, help="comma-separated names of the kernels to compile")
    args = parser.parse_args(argv)
    try:
        gpu = lookup_target(args.target)
        check_ptx_version(gpu, args.ptx_version)
        for spec in _selected_specs(KernelConfig(**json.loads(args.config)), args.training, args.only.split(",")):
            products = _compile_raw(spec, gpu, args.ptx_version)
            (args.out / f"{spec.name}.ptx").write_text(products.pop("ptx"))
            (args.out / f"{spec.name}.cubin").write_bytes(products.pop("cubin"))
            (args.out / f"{spec.name}.json").write_text(json.dumps(products))
            print(json.dumps({"done": spec.name}), flush=True)
    except (KernelCompileError, ValueError) as err:
        print(json.dumps({"error": str(err)}), flush=True)
        sys.exit(1)


if __name__ == "__main__":
    _child_main(sys.argv[1:])
