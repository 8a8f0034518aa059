"""Ahead-of-time compilation: PTX and cubin for every target and registered kernel, the PTX parameter list against the
documented calling convention, launch parameters against shape arithmetic, and the `compile-kernels` command.

Compiling costs seconds per kernel, so each target is compiled once per test session (module-scoped fixture) and
the tests read that result. Under TRITON_INTERPRET=1 this also exercises the child-process compile path.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import triton
from click.testing import CliRunner

from lion_export.cli import main
from lion_export.kernels.aot.specs import KernelConfig, KernelSpec, ProblemShape, ScalarArg, TensorArg, kernel_specs
from lion_export.kernels.aot.compiler import CompiledKernel, compile_kernels, parse_ptx_params
from lion_export.kernels.aot.cuda_targets import TARGETS, target

CONFIG = KernelConfig(dtype="fp16", head_dim=64)
#: Triton 3.x appends two hidden pointers (global scratch, profile scratch) to every kernel it compiles; ours never
#: read them, so compile_kernels drops them and the entry declares exactly the documented arguments
HIDDEN_PARAMS = 2
CUOBJDUMP = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
SCAN_CONVENTION = ("q", "k", "v", "log_decay", "L", "y", "num_scratch", "den_scratch")
SHAPES = [ProblemShape(1, 1, 1, 64, 64), ProblemShape(2, 3, 197, 64, 64), ProblemShape(4, 8, 4097, 64, 64)]


@pytest.fixture(scope="module", params=sorted(TARGETS))
def compiled(request) -> list[CompiledKernel]:
    return compile_kernels(request.param, CONFIG)


def _entry_params(ptx: str, entry: str) -> list[str]:
    """The `.param` declarations of one entry, read straight off the PTX text (independently of parse_ptx_params)."""
    body = ptx.split(f".entry {entry}(", 1)[1].split(")", 1)[0]
    return [line.strip() for line in body.splitlines() if line.strip().startswith(".param")]


def test_every_registered_kernel_compiles_to_ptx_and_cubin(compiled: list[CompiledKernel]) -> None:
    assert [k.spec.name for k in compiled] == [s.name for s in kernel_specs(CONFIG)]
    assert "lion_scan_fwd" in [k.spec.name for k in compiled]
    for kernel in compiled:
        # sm_90 code uses sm_90a-only instructions where Triton finds them (runs on H100/H200 only, as intended)
        assert kernel.ptx_target in (kernel.target.name, kernel.target.name + "a")
        assert re.search(rf"^\.target\s+{kernel.ptx_target}$", kernel.ptx, re.M), kernel.spec.name
        assert f".entry {kernel.entry}(" in kernel.ptx
        assert kernel.cubin[:4] == b"\x7fELF"             # ptxas (bundled with Triton) assembled it
        # PTX 8.0 by default (loads on every CUDA 12 driver), not the bundled ptxas's newest ISA
        assert kernel.ptx_version == 80 and re.search(r"^\.version 8\.0$", kernel.ptx, re.M)


def test_ptx_parameters_follow_the_calling_convention(compiled: list[CompiledKernel]) -> None:
    for kernel in compiled:
        declared = _entry_params(kernel.ptx, kernel.entry)
        assert len(declared) == len(kernel.spec.args) == len(kernel.ptx_params)
        for arg, line in zip(kernel.spec.args, declared):
            assert (".u32" in line) == (arg.role == "scalar") and (".ptr" in line) == (arg.role != "scalar")
        assert kernel.hidden_params == () and len(kernel.stripped_params) == HIDDEN_PARAMS
        assert all(name not in kernel.ptx for name in kernel.stripped_params)
        assert kernel.global_scratch_size == 0 and kernel.profile_scratch_size == 0
    scan = next(k for k in compiled if k.spec.name == "lion_scan_fwd")
    assert tuple(a.name for a in scan.spec.args) == SCAN_CONVENTION
    assert [a.role for a in scan.spec.args] == ["input"] * 4 + ["scalar"] + ["output"] * 3


@pytest.mark.skipif(not CUOBJDUMP.exists(), reason="Triton's bundled cuobjdump is missing")
def test_cubin_declares_the_documented_parameters(compiled: list[CompiledKernel], tmp_path: Path) -> None:
    """The re-assembled cubin itself (read with cuobjdump) has one kernel parameter per documented argument."""
    import subprocess

    for kernel in compiled:
        cubin = tmp_path / f"{kernel.spec.name}.cubin"
        cubin.write_bytes(kernel.cubin)
        elf = subprocess.run([str(CUOBJDUMP), "-elf", str(cubin)], capture_output=True, text=True, check=True).stdout
        sizes = {int(o, 16): int(z, 16) for o, z in re.findall(r"Ordinal : (0x[0-9a-f]+)\s+Offset\s+: 0x[0-9a-f]+"
                                                              r"\s+Size\s+: (0x[0-9a-f]+)", elf)}
        assert sizes == {i: 4 if arg.role == "scalar" else 8 for i, arg in enumerate(kernel.spec.args)}


def test_launch_parameters_follow_shape_arithmetic(compiled: list[CompiledKernel]) -> None:
    for kernel in compiled:
        for shape in SHAPES:
            launch = kernel.launch(shape)
            assert launch.block == (32 * kernel.spec.num_warps, 1, 1)
            assert launch.shared_mem == kernel.shared_mem <= kernel.target.max_shared_mem
            doubled = kernel.launch(ProblemShape(2 * shape.batch, shape.heads, shape.length, shape.dk, shape.dv))
            assert math.prod(doubled.grid) == 2 * math.prod(launch.grid)   # programs scale with B * H
    scan = next(k for k in compiled if k.spec.name == "lion_scan_fwd")
    assert not scan.needs_shared_mem_opt_in            # launchable by anything, no cuFuncSetAttribute needed
    block_dv = scan.spec.constexprs["BLOCK_DV"]
    for shape in SHAPES:
        grid = scan.launch(shape).grid
        tiles = -(-shape.dv // block_dv)
        assert grid == (shape.batch * shape.heads, tiles, 1)
        sizes = {a.name: a.shape(shape) for a in scan.spec.args if a.role != "scalar"}
        assert sizes["y"] == sizes["v"] == sizes["num_scratch"] == (shape.batch, shape.heads, shape.length, shape.dv)
        assert sizes["den_scratch"] == (shape.batch, shape.heads, tiles, shape.length)
        assert [a.value(shape) for a in scan.spec.scalars()] == [shape.length]


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_training_kernels_fit_the_smallest_shared_memory(dtype: str) -> None:
    """Every kernel, the backward's included, at head dim 128 (the widest) compiles for sm_86, the target with the
    least shared memory per block (99 KiB, like sm_89): compile_kernels refuses a kernel that needs more."""
    config = KernelConfig(dtype=dtype, head_dim=128)
    kernels = compile_kernels("sm_86", config, training=True)
    names = [kernel.spec.name for kernel in kernels]
    assert names == [spec.name for spec in kernel_specs(config, training=True)]
    assert {"lion_chunked_bwd_dq", "lion_chunked_bwd_states", "lion_chunked_bwd_dkdv"} <= set(names)
    assert all(kernel.shared_mem <= TARGETS["sm_86"].max_shared_mem for kernel in kernels)


def test_parse_ptx_params() -> None:
    ptx = (".visible .entry other(\n\t.param .u32 other_param_0\n)\n"
           ".visible .entry k(\n\t.param .u64 .ptr .global .align 16 k_param_0,\n\t.param .u32 k_param_1\n)\n")
    params = parse_ptx_params(ptx, "k")
    assert [(p.name, p.type, p.pointer) for p in params] == [("k_param_0", ".u64", True), ("k_param_1", ".u32", False)]


def test_bad_targets_and_specs_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown GPU target 'sm_99'"):
        target("sm_99")
    assert target("87") is TARGETS["sm_87"]
    with pytest.raises(ValueError, match="dtype"):
        KernelConfig(dtype="int8")
    # checked before Triton sees it: LLVM would abort the whole process on PTX 7.8 for sm_90a
    with pytest.raises(ValueError, match="PTX version 7.8 is not available for sm_90"):
        compile_kernels("sm_90", CONFIG, ptx_version=78)
    with pytest.raises(ValueError, match="PTX version 12.0 is not available"):
        compile_kernels("sm_80", CONFIG, ptx_version=120)
    fn = kernel_specs(CONFIG)[0].fn
    shape = lambda s: (s.batch,)  # noqa: E731
    out_of_order = (TensorArg("y", "output", "fp16", shape, "(B,)"), ScalarArg("L", lambda s: s.length, "L"))
    with pytest.raises(ValueError, match="inputs, then int32 scalars, then outputs"):
        KernelSpec("bad", fn, out_of_order, {}, 4, lambda s: (1, 1, 1), ("1", "1", "1"))
    with pytest.raises(ValueError, match="runtime arguments followed by the constexprs"):
        KernelSpec("bad", fn, (TensorArg("q", "input", "fp16", shape, "(B,)"),), {}, 4,
                   lambda s: (1, 1, 1), ("1", "1", "1"))


def test_compile_kernels_command(tmp_path: Path) -> None:
    """Same config as the fixture's, so Triton's on-disk cache makes this cheap; the files come from the command."""
    out = tmp_path / "kernels"
    result = CliRunner().invoke(main, ["compile-kernels", "--arch", "sm_87", "--out", str(out), "--dtype", "fp16",
                                       "--head-dim", "64"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["target"]["name"] == "sm_87" and manifest["config"]["dtype"] == "fp16"
    assert manifest["ptx_version"] == "8.0" and manifest["min_cuda_driver"] == "12.0"
    assert re.fullmatch(r"\d+\.\d+", manifest["cubin_ptxas_cuda"])
    assert [k["name"] for k in manifest["kernels"]] == [s.name for s in kernel_specs(CONFIG)]
    for entry in manifest["kernels"]:
        ptx = (out / entry["ptx"]).read_text()
        assert (out / entry["cubin"]).read_bytes()[:4] == b"\x7fELF"
        assert len(_entry_params(ptx, entry["entry"])) == len(entry["arguments"]) and entry["hidden_params"] == []
        assert len(entry["stripped_hidden_params"]) == HIDDEN_PARAMS
        assert [a["ptx_param"] for a in entry["arguments"]] == [f"{entry['entry']}_param_{i}"
                                                                 for i in range(len(entry["arguments"]))]
        assert entry["threads_per_block"] == 32 * entry["num_warps"] == entry["launch"]["block"][0]
        assert all(a["dtype"] in ("fp16", "fp32") for a in entry["arguments"] if a["role"] != "scalar")
    scan = next(k for k in manifest["kernels"] if k["name"] == "lion_scan_fwd")
    assert [a["name"] for a in scan["arguments"]] == list(SCAN_CONVENTION) and scan["runs_after"] == []
    # the chunked forward is two launches sharing a workspace: the manifest says which runs first
    chunked_out = next(k for k in manifest["kernels"] if k["name"] == "lion_chunked_out")
    assert chunked_out["runs_after"] == ["lion_chunked_states"]
    assert {"states", "norms"} <= {a["name"] for a in chunked_out["arguments"] if a["role"] == "input"}
    assert scan["constexprs"] == {"DK": 64, "DV": 64, "BLOCK_DK": 64, "BLOCK_DV": 32, "NORMALIZE": True, "EPS": 1e-6}
    example = scan["example"]
    assert example["grid"] == [example["shape"]["batch"] * example["shape"]["heads"], 2, 1]   # ceil(64 / 32)
    assert example["buffers"]["den_scratch"] == [example["shape"]["batch"], example["shape"]["heads"], 2,
                                                 example["shape"]["length"]]
    assert not list(out.glob(".*.tmp"))                               # no temporary files left behind


@pytest.mark.parametrize("args, message", [
    (["--arch", "sm_99"], "unknown GPU target 'sm_99'"),
    (["--arch", "sm_87", "--dtype", "int8"], "Invalid value for '--dtype': 'int8' is not one of 'fp32', 'fp16', 'bf16'"),
    (["--arch", "sm_87", "--head-dim", "x"], "Invalid value for '--head-dim': 'x' is not a valid integer"),
    (["--arch", "sm_87", "--head-dim", "200"], "head_dim must be in 1..128, got 200"),
    (["--arch", "sm_87", "--ptx-version", "eight"], "a PTX version looks like 8.0"),
    (["--arch", "sm_87", "--ptx-version", "7.0"], "PTX version 7.0 is not available for sm_87"),
    ([], "Missing option '--arch'"),
])
def test_compile_kernels_command_bad_options(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["compile-kernels", "--out", str(tmp_path / "k"), *args])
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0 and message in result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "k").exists()
