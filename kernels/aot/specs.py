"""Ahead-of-time descriptions of the Triton kernels: what a launcher without Python needs to call them.

A TensorRT AOT plugin (and a C++ user) receives PTX and must launch it by itself, so every kernel here is described by
a `KernelSpec`: its runtime arguments in parameter order, laid out as TensorRT's AOT path calls them (input pointers,
then int32 scalars, then output pointers), its constexpr choices (floats such as eps are baked in,
because TensorRT passes no float scalars), num_warps, and the grid as a pure function of the problem shape. Every
stride is derivable from the shapes, so kernels take contiguous tensors and only int32 sizes.

Kernel modules (scan.py, chunked.py) expose `aot_specs(config) -> list[KernelSpec]`; `kernel_specs` collects them.
A module's list is in launch order; a kernel that needs another's output (a workspace) names it in `runs_after`, and
the two share that buffer by argument name.
This module only describes: compiler.py compiles the specs, bundle.py writes them out for C++ launchers.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from lion_export.dtypes import KERNEL_DTYPES
from lion_export.scan_op import INPUTS, OUTPUTS

#: the modules that define kernels, in registry order; a module that does not exist (yet) is skipped
KERNEL_MODULES = ("scan", "chunked")
_ROLE_ORDER = {"input": 0, "scalar": 1, "output": 2}


@dataclass(frozen=True)
class ProblemShape:
    """The runtime sizes every launch rule is a function of: q, k (B, H, L, dk), v (B, H, L, dv)."""

    batch: int
    heads: int
    length: int
    dk: int
    dv: int


@dataclass(frozen=True)
class KernelConfig:
    """The compile-time choices: one PTX per (kernel, config, target). dv defaults to dk."""

    dtype: str = "fp16"
    head_dim: int = 64
    head_dim_v: int | None = None
    normalize: bool = True
    eps: float = 1e-6
    chunk_size: int = 64

    def __post_init__(self) -> None:
        if self.dtype not in KERNEL_DTYPES:
            raise ValueError(f"dtype must be one of {KERNEL_DTYPES}, got {self.dtype!r}")
        for name, dim in (("head_dim", self.head_dim), ("head_dim_v", self.dv)):
            if not 1 <= dim <= 128:          # the range every registered kernel compiles for (the chunked one's)
                raise ValueError(f"{name} must be in 1..128, got {dim}")
        if self.chunk_size < 16 or self.chunk_size & (self.chunk_size - 1):
            raise ValueError(f"chunk_size must be a power of two >= 16, got {self.chunk_size}")
        if not self.eps >= 0:
            raise ValueError(f"eps must be >= 0, got {self.eps}")

    @property
    def dk(self) -> int:
        return self.head_dim

    @property
    def dv(self) -> int:
        return self.head_dim if self.head_dim_v is None else self.head_dim_v


@dataclass(frozen=True)
class TensorArg:
    """A pointer argument: a contiguous tensor of `dtype` elements whose shape follows from the problem shape."""

    name: str
    role: str                                        # "input" or "output" (scratch buffers are outputs)
    dtype: str                                       # Triton element type: "fp32", "fp16", "bf16"
    shape: Callable[[ProblemShape], tuple[int, ...]]
    shape_formula: str                               # the same rule in words, for manifests: "(B, H, L, dv)"

    def __post_init__(self) -> None:
        if self.role not in ("input", "output"):
            raise ValueError(f"tensor argument {self.name!r}: role must be 'input' or 'output', got {self.role!r}")

    @property
    def triton_type(self) -> str:
        return f"*{self.dtype}"


@dataclass(frozen=True)
class ScalarArg:
    """An int32 scalar argument (TensorRT's AOT path passes no other scalar type)."""

    name: str
    value: Callable[[ProblemShape], int]
    formula: str                                     # "L"
    role: str = field(default="scalar", init=False)
    triton_type: str = field(default="i32", init=False)


def padded_head_dim(dim: int) -> int:
    """Head dims are padded (with masks) to a power of two >= 16: tl.dot tiles below 16 do not compile for a GPU."""
    return max(16, 1 << (dim - 1).bit_length())


def dv_tiles(dv: int, block_dv: int) -> int:
    """How many programs split one head's value dim: ceil(dv / block_dv)."""
    return -(-dv // block_dv)


def scan_node_arguments(dtype: str, block_dv: int) -> tuple[TensorArg | ScalarArg, ...]:
    """The arguments of every kernel that can back the `lion.SelectiveScan` node, in the order TensorRT's AOT path
    passes them: inputs q, k, v, log_decay (fp32); the int32 length L; outputs y and the fp32 scratch buffers
    num_scratch (B, H, L, dv) and den_scratch (B, H, ceil(dv / block_dv), L). One definition, so the scan and the
    chunked kernel stay interchangeable behind one plugin (the node's names: lion_export.scan_op)."""
    q, k, v, log_decay = INPUTS
    (y,) = OUTPUTS
    return (
        TensorArg(q, "input", dtype, lambda s: (s.batch, s.heads, s.length, s.dk), "(B, H, L, dk)"),
        TensorArg(k, "input", dtype, lambda s: (s.batch, s.heads, s.length, s.dk), "(B, H, L, dk)"),
        TensorArg(v, "input", dtype, lambda s: (s.batch, s.heads, s.length, s.dv), "(B, H, L, dv)"),
        TensorArg(log_decay, "input", "fp32", lambda s: (s.batch, s.heads, s.length), "(B, H, L)"),
        ScalarArg("L", lambda s: s.length, "L"),
        TensorArg(y, "output", dtype, lambda s: (s.batch, s.heads, s.length, s.dv), "(B, H, L, dv)"),
        TensorArg("num_scratch", "output", "fp32", lambda s: (s.batch, s.heads, s.length, s.dv), "(B, H, L, dv)"),
        TensorArg("den_scratch", "output", "fp32",
                  lambda s: (s.batch, s.heads, dv_tiles(s.dv, block_dv), s.length),
                  f"(B, H, ceil(dv / {block_dv}), L)"),
    )


@dataclass(frozen=True)
class KernelSpec:
    """One kernel as an AOT launcher sees it.

    `args` then `constexprs` must be the kernel's parameters in order; constexprs match them by name, runtime
    arguments by position (their names are the documented, launcher-facing ones, e.g. "q" for a `q_ptr` parameter).
    """

    name: str                                        # unique: registry key, file stem and manifest key
    fn: Any                                          # the @triton.jit function
    args: tuple[TensorArg | ScalarArg, ...]
    constexprs: dict[str, int | float | bool]
    num_warps: int
    grid: Callable[[ProblemShape], tuple[int, int, int]]
    grid_formula: tuple[str, str, str]               # grid x, y, z in words / expressions
    num_stages: int = 1
    # kernels of the same module that must have run first: their outputs of the same name are this kernel's inputs
    runs_after: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        roles = [_ROLE_ORDER[arg.role] for arg in self.args]
        if roles != sorted(roles):
            raise ValueError(f"kernel {self.name!r}: arguments must be inputs, then int32 scalars, then outputs "
                             f"(TensorRT's AOT calling convention); got {[a.role for a in self.args]}")
        params = list(self.fn.arg_names)                 # jit and interpreter functions both expose them
        if len(params) != len(self.args) + len(self.constexprs) or params[len(self.args):] != list(self.constexprs):
            raise ValueError(f"kernel {self.name!r}: the kernel's parameters {params} must be {len(self.args)} "
                             f"runtime arguments followed by the constexprs {list(self.constexprs)}, in order")
        if self.num_warps < 1 or self.num_warps & (self.num_warps - 1):
            raise ValueError(f"kernel {self.name!r}: num_warps must be a power of two, got {self.num_warps}")

    @property
    def threads_per_block(self) -> int:
        return 32 * self.num_warps

    @property
    def signature(self) -> dict[str, str]:
        """Triton's signature for `ASTSource`, keyed by the kernel's parameter names; constexprs marked so."""
        sig = {param: arg.triton_type for param, arg in zip(self.fn.arg_names, self.args)}
        sig.update({name: "constexpr" for name in self.constexprs})
        return sig

    def scalars(self) -> list[ScalarArg]:
        return [a for a in self.args if a.role == "scalar"]  # type: ignore[misc]


def kernel_specs(config: KernelConfig, training: bool = False) -> list[KernelSpec]:
    """Every registered kernel's spec for `config`, in registry order (each module of KERNEL_MODULES has an
    `aot_specs(config)`; imported lazily so that describing the registry never imports Triton kernels early).

    `training` adds the kernels only training launches (a module's `training_specs(config)`, after its inference
    ones): nothing outside Python launches them, but compiling them for each target shows what they need there.
    """
    specs: list[KernelSpec] = []
    for module_name in KERNEL_MODULES:
        module = importlib.import_module(f"lion_export.kernels.{module_name}")
        specs.extend(module.aot_specs(config))
        if training and hasattr(module, "training_specs"):
            specs.extend(module.training_specs(config))
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"kernel names must be unique, got {names}")
    for index, spec in enumerate(specs):
        if not set(spec.runs_after) <= set(names[:index]):
            raise ValueError(f"kernel {spec.name!r} runs after {list(spec.runs_after)}, which must precede it")
    return specs
