"""TensorRT's raw device pointers as torch tensors, so a plugin's enqueue can hand them to a Triton kernel.

TensorRT gives a Python plugin integers (device addresses of its own buffers) plus each tensor's type and dims.
torch adopts foreign CUDA memory through `__cuda_array_interface__` without copying or taking ownership; the view is
described as bytes and reinterpreted, because numpy's type strings have no bfloat16.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from lion_export import dtypes



class _ForeignBuffer:
    """The minimal CUDA array interface (version 3) over `nbytes` bytes at `pointer`, read-write."""

    def __init__(self, pointer: int, nbytes: int) -> None:
        self.__cuda_array_interface__ = {"shape": (nbytes,), "typestr": "|u1", "data": (int(pointer), False),
                                         "version": 3, "strides": None}


def torch_dtype(trt_type: object) -> torch.dtype:
    """The torch dtype of a TensorRT DataType (FLOAT, HALF, BF16); ValueError for any other."""
    return dtypes.torch_dtype(dtypes.from_tensorrt(getattr(trt_type, "name", str(trt_type))).name)


def device_tensor(pointer: int, shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
    """A contiguous CUDA tensor viewing TensorRT's buffer at `pointer` (no copy; TensorRT keeps ownership)."""
    shape = tuple(int(d) for d in shape)
    nbytes = math.prod(shape) * dtype.itemsize
    raw = torch.as_tensor(_ForeignBuffer(pointer, nbytes))     # on the device that holds the pointer
    return raw.view(dtype).view(shape)


__all__ = ["device_tensor", "torch_dtype"]
