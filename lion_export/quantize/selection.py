"""Which nodes of a graph are linear layers, the only ones INT8 quantization touches.

A linear layer is a Conv, MatMul or Gemm whose weight (its second input) is an initializer: the patch embedding,
the qkv / projection / MLP layers, the classifier. Selecting by op type alone would also take the chunked form's
mixer, whose MatMuls multiply two activations (queries by keys, decay masks by values): that is the LION attention
itself, and it stays in floating point with its decays, as do the LayerNorms. Both forms of one model therefore
quantize the same layers.

The LION-S decay gates (the Linear layers a_i, a2_i, Wa_i: one value per head and token) are linear layers too, but
their output is the decays' logit, and decays stay fp32: they stay in float with their inputs. With a few output
channels they have no speed to give either. They are known by their parameters' names, which the exporter keeps on
the layer's weight or bias initializer.
"""
from __future__ import annotations

from collections.abc import Iterable

LINEAR_OP_TYPES = ("Conv", "MatMul", "Gemm")
QDQ_OP_TYPES = ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "MatMulInteger",
                "ConvInteger", "DynamicQuantizeLinear")
DECAY_GATES = ("a_i", "a2_i", "Wa_i")     # models/attention.py: the LION-S decay parameters that are Linear layers
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
    gates = decay_gates(model)
    return [node.name for node in model.graph.node
            if node.op_type in op_types and len(node.input) > 1 and node.input[1] in weights
            and block_of(node.name) not in exclude and node.name not in gates]


def decay_gates(model) -> set[str]:
    """Names of the Conv / MatMul / Gemm nodes that compute a LION-S decay gate: their own initializers, or those
    of the bias Add reading their output, are named after a decay-gate parameter ("blocks.0.attn.a_i.bias")."""
    constants = {init.name for init in model.graph.initializer}
    bias_adds: dict[str, list[str]] = {}
    for node in model.graph.node:
        if node.op_type == "Add":
            for name in node.input:
                bias_adds.setdefault(name, []).extend(other for other in node.input if other in constants)

    def is_gate(name: str) -> bool:
        return any(part in DECAY_GATES for part in name.split("."))

    return {node.name for node in model.graph.node if node.op_type in LINEAR_OP_TYPES
            and any(is_gate(name) for name in (*node.input[1:], *bias_adds.get(node.output[0], ())))}


__all__ = ["DECAY_GATES", "LINEAR_OP_TYPES", "QuantizeError", "block_of", "check_float32", "check_not_quantized",
           "decay_gates", "linear_layers"]
