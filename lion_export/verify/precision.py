"""The fp16 precision contract, checked on the graph itself: decay sums and exponentials computed in fp32.

An fp16 export keeps every LION mixer's log decays, their prefix sums (CumSum) and exponentials (Exp) in fp32
(lion_export/forms: "prefix sums of decays are where fp16 loses a model"), and feeds `lion.SelectiveScan` (or
standard LinearAttention) fp32 log decays. A graph that breaks this can still match eager PyTorch on onnxruntime's
CPU provider, which upcasts fp16 nodes it has no fp16 kernel for (CumSum among them) to fp32, so parity there
cannot see the defect; TensorRT and GPU providers run those nodes in fp16. Hence this static check: each such
node's input type, from ONNX shape inference.
"""
from __future__ import annotations

from pathlib import Path

from ..scan_op import LINEAR_ATTENTION_DECAY_INPUT, LOG_DECAY_INPUT, is_linear_attention, is_scan_op

DECAY_OPS = ("CumSum", "Exp")


def fp16_decay_nodes(onnx_path: str | Path) -> list[str]:
    """Nodes of the decay path that compute in float16 ("CumSum node_cumsum_3 on float16"); [] when none."""
    import onnx

    proto = onnx.load(str(onnx_path))
    inferred = onnx.shape_inference.infer_shapes(proto)
    types = {v.name: v.type.tensor_type.elem_type
             for v in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]}
    types.update({t.name: t.data_type for t in inferred.graph.initializer})
    found = []
    for node in inferred.graph.node:
        if node.domain in ("", "ai.onnx") and node.op_type in DECAY_OPS:
            watched = node.input[0]
        elif is_scan_op(node.domain, node.op_type) and len(node.input) > LOG_DECAY_INPUT:
            watched = node.input[LOG_DECAY_INPUT]
        elif is_linear_attention(node.domain, node.op_type) and len(node.input) > LINEAR_ATTENTION_DECAY_INPUT:
            watched = node.input[LINEAR_ATTENTION_DECAY_INPUT]
        else:
            continue
        if types.get(watched) == onnx.TensorProto.FLOAT16:
            found.append(f"{node.op_type} {node.name or watched} on float16")
    return found


__all__ = ["fp16_decay_nodes"]
