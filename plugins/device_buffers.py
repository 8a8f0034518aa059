"""TensorRT's raw device pointers as torch tensors, so a plugin's enqueue can hand them to a Triton kernel.

TensorRT gives a Python plugin integers (device addresses of its own buffers) plus each tensor's type and dims.
torch adopts foreign CUDA memory through `__cuda_array_interface__` without copying or taking ownership; the view is
described as bytes and reinterpreted, because numpy's type strings have no bfloat16.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

#: TensorRT DataType names (the same in tensorrt and tensorrt_rtx_bindings) -> torch dtypes the plugin handles
TORCH_DTYPES = {"FLOAT": torch.float32, "HALF": torch.float16, "BF16": torch.bfloat16}


class _ForeignBuffer:
    """The minimal CUDA array interface (version 3) over `nbytes` bytes at `pointer`, read-write."""

    def __init__(self, pointer: int, nbytes: int) -> None:
        self.__cuda_array_interface__ = {"shape": (nbytes,), "typestr": "|u1", "data": (int(pointer), False),
                                         "version": 3, "strides": None}


def torch_dtype(trt_type: object) -> torch.dtype:
    """The torch dtype of a TensorRT DataType (FLOAT, HALF, BF16); ValueError for any other."""
    name = getattr(trt_type, "name", str(trt_type))
    if name not in TORCH_DTYPES:
        raise ValueError(f"no torch dtype for TensorRT type {name} (the plugin handles {', '.join(TORCH_DTYPES)})")
    return TORCH_DTYPES[name]


def device_tensor(pointer: int, shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
    """A contiguous CUDA tensor viewing TensorRT's buffer at `pointer` (no copy; TensorRT keeps ownership)."""
    shape = tuple(int(d) for d in shape)
    nbytes = math.prod(shape) * dtype.itemsize
    raw = torch.as_tensor(_ForeignBuffer(pointer, nbytes))     # on the device that holds the pointer
    return raw.view(dtype).view(shape)


__all__ = ["TORCH_DTYPES", "device_tensor", "torch_dtype"]
