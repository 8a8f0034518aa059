"""Which standard-domain ONNX opset an export targets, and which it refuses.

DEFAULT_OPSET is the newest opset onnxruntime 1.32 runs: its CPU kernel registry
(`onnxruntime.capi.onnxruntime_pybind11_state.get_all_opkernel_def()`) tops out at opset 28, which is also the
newest opset onnx 1.23 defines (`onnx.defs.onnx_opset_version()`); tests/test_export.py checks that the
installed onnxruntime still loads it. MIN_OPSET is 18 because torch's ONNX exporter writes its op library
(torchlib) at opset 18: ReduceMean/ReduceMax with axes as an input, LayerNormalization as one op (17), CastLike
in the SelectiveScan function (15); older targets would need down-conversion that these ops do not survive.
"""
from __future__ import annotations

import onnx

MIN_OPSET = 18
DEFAULT_OPSET = 28


class OpsetError(ValueError):
    """An opset the exporter cannot target; the message says which ones it can."""


def resolve_opset(opset: int | None) -> int:
    """None -> DEFAULT_OPSET; otherwise `opset` if within [MIN_OPSET, newest known to the installed onnx]."""
    if opset is None:
        return DEFAULT_OPSET
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int):
        raise OpsetError(f"opset must be an integer, got {opset!r}")
    if opset < MIN_OPSET:
        raise OpsetError(f"opset {opset} is too old for the ops a LION export uses (LayerNormalization, "
                         f"ReduceMean with axes as an input, CastLike): use an opset between {MIN_OPSET} and {newest}")
    if opset > newest:
        raise OpsetError(f"opset {opset} is newer than onnx {onnx.__version__} defines: use an opset between "
                         f"{MIN_OPSET} and {newest}")
    return opset


__all__ = ["MIN_OPSET", "DEFAULT_OPSET", "OpsetError", "resolve_opset"]
