"""The one dtype table against the libraries it names: each name resolves, and to the type of that width."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lion_export import dtypes


@pytest.mark.parametrize("name, bits", [("fp32", 32), ("fp16", 16), ("bf16", 16)])
def test_every_name_resolves_to_a_float_of_its_width(name, bits):
    resolved = dtypes.torch_dtype(name)
    assert resolved.is_floating_point and resolved.itemsize * 8 == bits
    assert dtypes.from_tensorrt(dtypes.DTYPES[name].tensorrt).name == name


def test_numpy_types_match_torch_and_bf16_has_none():
    for name in ("fp32", "fp16"):
        assert torch.from_numpy(np.zeros(1, dtypes.numpy_dtype(name))).dtype == dtypes.torch_dtype(name)
    with pytest.raises(ValueError, match="numpy has no bf16"):
        dtypes.numpy_dtype("bf16")


def test_tensorrt_names_are_members_of_tensorrts_datatype():
    trt = pytest.importorskip("tensorrt_rtx_bindings", reason="needs TensorRT-RTX (the [tensorrt-rtx] extra)")
    for entry in dtypes.DTYPES.values():
        assert hasattr(trt.DataType, entry.tensorrt), entry


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="unknown dtype 'fp8'"):
        dtypes.torch_dtype("fp8")
    with pytest.raises(ValueError, match="TensorRT type INT8"):
        dtypes.from_tensorrt("INT8")
