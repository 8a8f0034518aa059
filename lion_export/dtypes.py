"""The floating-point types, in one table: our names and what torch, numpy, TensorRT and Triton call them.

Our names ("fp32", "fp16", "bf16") are what the commands take and what Triton calls its element types, so a kernel
config reads them as they are. The other libraries' names are kept as strings and resolved on demand, so importing
this table costs nothing (the CLI validates `--dtype` without importing torch).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DType:
    """One floating-point type under every name the package meets it by."""

    name: str               # ours, and Triton's element type: "fp16"
    torch: str              # the torch attribute: "float16"
    numpy: str | None       # the numpy type, None where numpy has none (bfloat16)
    tensorrt: str           # the TensorRT DataType member (the same in tensorrt and tensorrt_rtx_bindings): "HALF"


DTYPES: dict[str, DType] = {d.name: d for d in (
    DType("fp32", "float32", "float32", "FLOAT"),
    DType("fp16", "float16", "float16", "HALF"),
    DType("bf16", "bfloat16", None, "BF16"),
)}
#: the types an exported graph (and so verify and bench) comes in
GRAPH_DTYPES = ("fp32", "fp16")
#: what `lion-export export --dtype` takes: a graph dtype, or int8 (the fp32 export, then quantized by
#: lion_export.quantize: INT8 linear layers, the rest fp32)
EXPORT_DTYPES = (*GRAPH_DTYPES, "int8")
#: the types the Triton kernels compile for
KERNEL_DTYPES = ("fp32", "fp16", "bf16")


def dtype(name: str) -> DType:
    """The entry called `name`; ValueError naming the valid ones otherwise."""
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; valid: {', '.join(DTYPES)}")
    return DTYPES[name]


def torch_dtype(name: str) -> Any:
    """torch's dtype for `name` ("fp16" -> torch.float16)."""
    import torch

    return getattr(torch, dtype(name).torch)


def numpy_dtype(name: str) -> Any:
    """numpy's dtype for `name` ("fp16" -> float16); ValueError for bf16, which numpy lacks."""
    import numpy as np

    entry = dtype(name)
    if entry.numpy is None:
        raise ValueError(f"numpy has no {name}")
    return np.dtype(entry.numpy)


def from_tensorrt(type_name: str) -> DType:
    """The entry of a TensorRT DataType name ("HALF"); ValueError for any other."""
    found = [d for d in DTYPES.values() if d.tensorrt == type_name]
    if not found:
        raise ValueError(f"TensorRT type {type_name} is not one of {', '.join(d.tensorrt for d in DTYPES.values())}")
    return found[0]


__all__ = ["DType", "DTYPES", "EXPORT_DTYPES", "GRAPH_DTYPES", "KERNEL_DTYPES", "dtype", "torch_dtype", "numpy_dtype",
           "from_tensorrt"]
