"""Which nodes of a graph are linear layers, the only ones INT8 quantization touches.

A linear layer is a Conv, MatMul or Gemm whose weight (its second input) is an initializer: the patch embedding,
the qkv / projection / MLP layers, the classifier. Selecting by op type alone would also take the chunked form's
mixer, whose MatMuls multiply two activations (queries by keys, decay masks by values): that is the LION attention
itself, and it stays in floating point with its decays, as do the LayerNorms. Both forms of one model therefore
quantize the same layers.
"""
from __future__ import annotations

from collections.abc import Iterable

LINEAR_OP_TYPES = ("Conv", "MatMul", "Gemm")
QDQ_OP_TYPES = ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "MatMulInteger",
                "ConvInteger", "DynamicQuantizeLinear")
BLOCK_PREFIX = "blocks."      # the exporter names each block's nodes "blocks.<index>.<node>"


class QuantizeError(ValueError):
    """A graph that cannot be quantized as asked (already quantized, an unknown block or op type)."""


def check_not_quantized(model) -> None:
    """Refuse a graph that holds quantized ops already: quantizing twice would stack Q/DQ pairs."""
    found = sorted({node.op_type for node in model.graph.node if node.op_type in QDQ_OP_TYPES})
    if found:
        raise QuantizeError(f"the graph is already quantized (it holds {', '.join(found)}); give the float export")


def check_float32(model) -> None:
    """Refuse an fp16 export: INT8 scales are fitted to fp32 activations, and the quantizer computes in fp32."""
    import onnx

    if any(init.data_type == onnx.TensorProto.FLOAT16 for init in model.graph.initializer):
        raise QuantizeError("the graph is fp16; quantize the fp32 export (lion-export export --dtype fp32)")


def block_of(node_name: str) -> int | None:
    """The block index in an exported node's name ("blocks.3.node_MatMul_12" -> 3), None outside the blocks."""
    if not node_name.startswith(BLOCK_PREFIX):
        return None
    index = node_name[len(BLOCK_PREFIX):].split(".", 1)[0]
    return int(index) if index.isdigit() else None


def linear_layers(model, op_types: Iterable[str] = LINEAR_OP_TYPES, exclude_blocks: Iterable[int] = ()) -> list[str]:
    """Names of the linear-layer nodes to quantize: `op_types` nodes reading an initializer weight, minus the nodes
    of the blocks in `exclude_blocks` (each must exist)."""
    op_types, exclude = tuple(op_types), set(exclude_blocks)
    unknown = sorted(set(op_types) - set(LINEAR_OP_TYPES))
    if unknown:
        raise QuantizeError(f"op types {unknown} are not linear layers; choose among {', '.join(LINEAR_OP_TYPES)}")
    blocks = {block_of(node.name) for node in model.graph.node} - {None}
    missing = sorted(exclude - blocks)
    if missing:
        raise QuantizeError(f"no block {missing} in this graph (its blocks: 0..{max(blocks)})" if blocks else
                            f"no block {missing}: this graph has no blocks.N nodes")
    weights = {init.name for init in model.graph.initializer if len(init.dims) >= 2}
    return [node.name for node in model.graph.node
            if node.op_type in op_types and len(node.input) > 1 and node.input[1] in weights
            and block_of(node.name) not in exclude]


__all__ = ["LINEAR_OP_TYPES", "QuantizeError", "block_of", "check_float32", "check_not_quantized", "linear_layers"]
