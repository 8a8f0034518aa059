"""Activation scales rounded up to powers of two, for smaller TensorRT-RTX engines (`quantize --pow2-scales`).

TensorRT-RTX compiles identical transformer blocks once, and a block's activation scales are part of what makes
it identical (its weights and per-channel weight scales are not): with calibrated scales every block differs, and
the engine carries about 0.27 MiB more for each, at every width measured (16 to 768). That is inferred from
engine sizes (what an engine holds cannot be listed without a GPU). Measured at vit-tiny width (dim 192, 12 blocks;
sm_89): the INT8 engine is 14.4 MiB against 12.9 MiB fp16; the same file with every block given block 0's
activation scales (7 distinct values, one per role) builds to 11.3 MiB, and 0.28 MiB more when the last block's
differ again; with its scales rounded up to powers of two (51 distinct values -> 5), to 11.4 MiB. Rounding makes
blocks identical wherever each role's rounded scale is the same in every block.

Rounding up keeps the calibrated range inside the int8 grid (nothing newly clips) and at most doubles the step,
so an activation loses up to one bit of resolution, half a bit on average; on the bundled digits model the INT8
accuracy went from 97.50% to 97.22%. onnxruntime's CPU speed does not depend on the values. The file's own
scales are what verify's fake-quantized reference reads, so it is verified like any INT8 file.
"""
from __future__ import annotations

QDQ_OP_TYPES = ("QuantizeLinear", "DequantizeLinear")


def round_activation_scales(model) -> int:
    """Round every activation Q/DQ scale of `model` (in place) up to a power of two; returns how many distinct
    activation scales the file then holds. Weights' scales (a DequantizeLinear reading an initializer) are kept."""
    import numpy as np
    from onnx import numpy_helper

    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    names = {node.input[1] for node in graph.node
             if node.op_type in QDQ_OP_TYPES and node.input[0] not in initializers}
    values = set()
    for name in names:
        scale = numpy_helper.to_array(initializers[name])
        rounded = np.exp2(np.ceil(np.log2(scale.astype(np.float64)))).astype(scale.dtype)
        initializers[name].CopyFrom(numpy_helper.from_array(rounded, name))
        values.update(rounded.ravel().tolist())
    return len(values)


__all__ = ["round_activation_scales"]
