"""Where the activation Q/DQ pairs sit, so that onnxruntime's CPU fusions take every linear layer.

onnxruntime's quantizer puts one QuantizeLinear / DequantizeLinear pair on each tensor it quantizes and points
every reader of the tensor at it: a LayerNorm output read by the qkv layer and by a float layer beside it, the image
read by the patch embedding and by a Shape node. On x86, onnxruntime fuses a linear layer into an integer kernel
(MatMulIntegerToFloat, QLinearConv) only after turning its int8 pair into uint8 (its own faster u8 x s8 kernels),
and it does that only for a QuantizeLinear read by a single DequantizeLinear. A shared pair therefore leaves the
layer as DequantizeLinear ops plus a float MatMul, which costs more time than it saves. Here every pair feeds one
layer, and every other reader takes the float tensor, so nothing else is quantized by accident:

- a linear layer's input: a pair of its own (the weight's DequantizeLinear is the quantizer's, unchanged);
- a Conv's output: one pair, its readers share it (onnxruntime needs it to fuse DQ -> Conv -> Q into QLinearConv);
- MatMul and Gemm outputs stay float (the quantizer is told not to quantize them): a quantized output would only
  be dequantized again for the bias Add, the residual Add or the logits.

One tensor read by several linear layers gets one identical pair per layer; onnxruntime merges identical nodes,
so such layers stay unfused on x86 CPUs (TensorRT is not affected).
"""
from __future__ import annotations

from collections.abc import Iterable

QUANTIZED_OUTPUT_OP_TYPES = ("Conv",)          # linear layers whose output keeps its Q/DQ pair


def place_activation_pairs(model, linear_nodes: Iterable[str]) -> None:
    """Rewrite `model` (onnxruntime's QDQ output) in place: one activation pair per linear-layer input, one per
    quantized Conv output, none elsewhere. Weights' DequantizeLinear nodes are left as they are."""
    graph = model.graph
    nodes = list(graph.node)
    linear = set(linear_nodes)
    quantized_outputs = {node.output[0] for node in nodes
                         if node.name in linear and node.op_type in QUANTIZED_OUTPUT_OP_TYPES}
    constants = {init.name for init in graph.initializer}
    graph_outputs = {output.name for output in graph.output}
    readers: dict[str, list[tuple[int, int]]] = {}          # tensor -> (node position, input index)
    for position, node in enumerate(nodes):
        for index, name in enumerate(node.input):
            readers.setdefault(name, []).append((position, index))
    removed: set[int] = set()
    inserted: dict[int, list] = {}
    for position, quantize in enumerate(nodes):
        if quantize.op_type != "QuantizeLinear" or quantize.input[0] in constants:
            continue
        dequantizers = [reader for reader, _ in readers.get(quantize.output[0], [])]
        if any(nodes[d].op_type != "DequantizeLinear" or nodes[d].output[0] in graph_outputs for d in dequantizers):
            continue
        removed.update((position, *dequantizers))
        uses = [use for d in dequantizers for use in readers.get(nodes[d].output[0], [])]
        inserted[position] = _pairs(quantize, nodes[dequantizers[0]] if dequantizers else quantize,
                                    [(nodes[r], i) for r, i in uses], linear, quantize.input[0] in quantized_outputs)
    gone = {name for position in removed for name in nodes[position].output}
    kept = [new for position, node in enumerate(nodes)
            for new in (*inserted.get(position, ()), *(() if position in removed else (node,)))]
    _replace(graph.node, kept)
    _replace(graph.value_info, [info for info in graph.value_info if info.name not in gone])


def _replace(field, items: list) -> None:
    """Set a repeated field of the graph to `items` (taken from it or new), copied first: clearing the field would
    invalidate the ones taken from it."""
    copies = []
    for item in items:
        copies.append(type(item)())
        copies[-1].CopyFrom(item)
    del field[:]
    field.extend(copies)


def _pairs(quantize, dequantize, uses: list[tuple[object, int]], linear: set[str], shared: bool) -> list:
    """The new Q/DQ nodes replacing `quantize` and its DequantizeLinear nodes (`dequantize`: one of them, whose
    attributes the new ones copy), its readers rewired: one pair for all readers where `shared` (a Conv output),
    else one per linear-layer input, and the float tensor elsewhere."""
    from onnx import helper

    tensor, parameters = quantize.input[0], list(quantize.input[1:])
    made: list = []
    for reader, index in uses:
        if not shared and not (reader.name in linear and index == 0):
            reader.input[index] = tensor
            continue
        if not made or not shared:
            suffix = "" if shared else f"/{reader.name}"
            made += [helper.make_node("QuantizeLinear", [tensor, *parameters], [f"{tensor}_quantized{suffix}"],
                                      name=f"{quantize.name}{suffix}"),
                     helper.make_node("DequantizeLinear", [f"{tensor}_quantized{suffix}", *parameters],
                                      [f"{tensor}_dequantized{suffix}"], name=f"{quantize.name}{suffix}/dequantize")]
            made[-2].attribute.extend(quantize.attribute)
            made[-1].attribute.extend(dequantize.attribute)
        reader.input[index] = made[-1].output[0]
    return made


__all__ = ["QUANTIZED_OUTPUT_OP_TYPES", "place_activation_pairs"]
