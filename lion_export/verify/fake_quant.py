"""The reference of an INT8 QDQ file: the checkpoint's model in eager PyTorch, fake-quantized where the file is.

A QDQ graph computes in float between QuantizeLinear / DequantizeLinear pairs, so its honest reference is the
same model with the same rounding at the same places, not the float model (whose distance to the file is the
quantization error, judged separately: task_figures.py). The places are read from the file, never assumed:

- every quantized linear node (Conv, MatMul, Gemm) is mapped to its nn.Linear / nn.Conv2d through the name of the
  weight it reads: the parameter itself (Gemm, Conv: `head.weight`), or its transpose, which the exporter names
  `<parameter>.T` (MatMul: `blocks.0.attn.qkv.weight.T`); a quantizer may append its own suffix
  (`..._quantized`). A tied weight (a decoder sharing the token embedding) maps to the Linear that uses it.
- each Q/DQ pair sits at one of three positions of such a node: its weight (per-channel scales, whose axis is
  mapped to the module's (out, in) layout), its input activation, or its output activation, before the bias
  Add of a MatMul or after it; reshapes and transposes between a per-tensor pair and its node move no value and
  are seen through. The module then gets a fake-quantized weight copy, a forward pre-hook for its input
  and a forward hook for its output (`torch.fake_quantize_per_channel_affine` / `_per_tensor_affine`).
- a pair the reference cannot place is an error naming its tensor, never skipped: a pair elsewhere (the mixer, a
  LayerNorm), a dequantized tensor that also reaches a node the hooks do not see, or a node whose weight names no
  module of the model.

Only the checkpoint's weights enter the reference (the file's int8 weights never do), so a file whose weights are
not the checkpoint's under its own scales fails parity. The rounding runs in float32, as the graph's does.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

LINEAR_NODES = ("Conv", "MatMul", "Gemm")
QDQ_NODES = ("QuantizeLinear", "DequantizeLinear")
TRANSPOSED_SUFFIX = ".T"          # the exporter's name for a weight's folded transpose (export/block_stack.py)
INT_RANGES = {"int8": (-128, 127), "uint8": (0, 255)}
SHAPE_READERS = ("Shape", "Size")  # read a tensor's shape only: its rounding cannot reach them
# move values without changing them: a per-tensor rounding before them is the same rounding after them
LAYOUT_OPS = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose")


class FakeQuantError(ValueError):
    """A QDQ file whose quantization the eager reference cannot reproduce (bad input: exit 2)."""


@dataclass(frozen=True)
class Quantization:
    """One QuantizeLinear -> DequantizeLinear rounding: the graph tensor it rounds, its scale(s), zero point(s),
    the channel axis (None: per tensor) and the integer range."""

    tensor: str
    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None
    low: int
    high: int

    def apply(self, value: torch.Tensor) -> torch.Tensor:
        """`value` rounded to this grid, in float32 (the graph's activations and weights are float32), returned in
        its own dtype."""
        x = value.to(torch.float32)
        scale = torch.as_tensor(self.scale, dtype=torch.float32, device=x.device)
        zero = torch.as_tensor(self.zero_point.astype(np.int32), device=x.device)
        if self.axis is None:
            out = torch.fake_quantize_per_tensor_affine(x, float(scale), int(zero), self.low, self.high)
        else:
            out = torch.fake_quantize_per_channel_affine(x, scale, zero, self.axis % x.dim(), self.low, self.high)
        return out.to(value.dtype)


@dataclass(frozen=True)
class LayerQuantization:
    """What the file quantizes around one linear layer (module), each None where it does not."""

    module: str
    node: str
    weight: Quantization | None = None
    input: Quantization | None = None
    output: Quantization | None = None
    output_before_bias: bool = False
    input_shared: bool = False      # the rounded input is what every reader of the tensor sees (see read_plan)


def is_qdq(proto) -> bool:
    """Whether the graph holds QuantizeLinear / DequantizeLinear nodes (an INT8 QDQ file)."""
    return any(node.op_type in QDQ_NODES and node.domain in ("", "ai.onnx") for node in proto.graph.node)


class _Graph:
    """Producers, consumers and constants of a graph, by tensor name."""

    def __init__(self, proto) -> None:
        from onnx import numpy_helper

        self.constants = {t.name: t for t in proto.graph.initializer}
        self.inputs = {value.name for value in proto.graph.input}
        self.nodes = {node.name: node for node in proto.graph.node}
        self.producer = {out: node for node in proto.graph.node for out in node.output}
        self.consumers: dict[str, list] = {}
        for node in proto.graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        for node in proto.graph.node:     # Constant nodes count as constants too (a hand-placed scale may be one)
            if node.op_type == "Constant":
                self.constants[node.output[0]] = next(a.t for a in node.attribute if a.name == "value")
        self._array = numpy_helper.to_array

    def array(self, name: str) -> np.ndarray | None:
        tensor = self.constants.get(name)
        return None if tensor is None else self._array(tensor)

    def attribute(self, node, name: str, default):
        from onnx import helper

        return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def _quantization(graph: _Graph, quantize, dequantize, tensor: str) -> Quantization:
    """The rounding of one Q -> DQ pair (or of a DQ alone reading an integer constant: a stored weight)."""
    scale_name = dequantize.input[1]
    zero_name = dequantize.input[2] if len(dequantize.input) > 2 and dequantize.input[2] else None
    if quantize is not None and (quantize.input[1] != scale_name or (quantize.input[2:3] or [None])[0] != zero_name):
        q_scale, dq_scale = graph.array(quantize.input[1]), graph.array(scale_name)
        if q_scale is None or dq_scale is None or not np.array_equal(q_scale, dq_scale):
            raise FakeQuantError(f"{tensor}: its QuantizeLinear and DequantizeLinear use different scales; the "
                                 "reference reproduces a Q/DQ pair only as one rounding")
    scale = graph.array(scale_name)
    if scale is None:
        raise FakeQuantError(f"{tensor}: the scale {scale_name!r} is not a constant of the graph")
    zero = graph.array(zero_name) if zero_name else np.zeros(scale.shape, np.int8)
    if zero is None or zero.dtype.name not in INT_RANGES:
        raise FakeQuantError(f"{tensor}: only int8 / uint8 quantization is reproduced, not "
                             f"{'a non-constant zero point' if zero is None else zero.dtype.name}")
    low, high = INT_RANGES[zero.dtype.name]
    per_channel = scale.ndim == 1 and scale.size > 1
    axis = int(graph.attribute(dequantize, "axis", 1)) if per_channel else None
    return Quantization(tensor, scale.astype(np.float32).reshape(-1) if per_channel else scale.astype(np.float32),
                        zero.reshape(-1) if per_channel else zero, axis, low, high)


def _linear_modules(model: nn.Module) -> dict[str, tuple[str, nn.Module]]:
    """Every name a Linear / Conv2d weight is reachable under (tied weights: each of their names) -> module."""
    modules = {id(m.weight): (name, m) for name, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))}
    return {name: modules[id(p)] for name, p in model.named_parameters(remove_duplicate=False) if id(p) in modules}


def _module_of(node, weight_names: list[str], weights: dict[str, tuple[str, nn.Module]]) -> tuple[str, nn.Module]:
    """The module whose weight one linear node reads: the longest parameter name (or `<name>.T` for a MatMul) that
    one of `weight_names` is, or starts with followed by a quantizer's "_suffix"."""
    candidates = []
    for parameter, found in weights.items():
        for name in (parameter + TRANSPOSED_SUFFIX, parameter):
            if any(w == name or w.startswith(name + "_") for w in weight_names):
                candidates.append((len(name), found))
    if not candidates:
        raise FakeQuantError(f"the quantized {node.op_type} node {node.name!r} reads weight {weight_names[0]!r}, "
                             "which names no Linear / Conv2d parameter of the model (export the file again with "
                             "this version of lion-export: it names each weight after its parameter)")
    return max(candidates, key=lambda c: c[0])[1]


def _transposed(node, graph: _Graph) -> bool:
    """Whether the node reads the module's (out, in) weight transposed: a MatMul does, a Gemm with transB = 0 too."""
    return node.op_type == "MatMul" or (node.op_type == "Gemm" and not graph.attribute(node, "transB", 0))


def _weight_axis(node, graph: _Graph, axis: int | None) -> int | None:
    """The per-channel axis of a graph weight, in the module's own (out, in, ...) layout."""
    return (1 - axis % 2) if axis is not None and _transposed(node, graph) else axis


def _check_shape(node, graph: _Graph, stored: str, module: nn.Module) -> None:
    """The graph's weight has the module's weight shape, in the node's orientation."""
    tensor = graph.constants.get(stored)
    shape = tuple(module.weight.shape)
    if _transposed(node, graph):
        shape = shape[::-1]
    if tensor is not None and tuple(tensor.dims) != shape:
        raise FakeQuantError(f"the quantized weight {stored!r} of {node.name!r} has shape {tuple(tensor.dims)}; "
                             f"its module's weight, read as this {node.op_type} reads it, has shape {shape}")


def _source(graph: _Graph, name: str):
    """(QuantizeLinear or None, DequantizeLinear, the tensor rounded) when `name` is a DequantizeLinear's output,
    else None."""
    dequantize = graph.producer.get(name)
    if dequantize is None or dequantize.op_type != "DequantizeLinear":
        return None
    quantize = graph.producer.get(dequantize.input[0])
    if quantize is not None and quantize.op_type == "QuantizeLinear":
        return quantize, dequantize, quantize.input[0]
    return None, dequantize, dequantize.input[0]


def _before_layout(graph: _Graph, name: str) -> str:
    """The tensor that `name` is a reshaped / transposed view of (itself if none)."""
    while (producer := graph.producer.get(name)) is not None and producer.op_type in LAYOUT_OPS:
        name = producer.input[0]
    return name


def _after_layout(graph: _Graph, name: str) -> str:
    """The last of the views that `name` alone feeds (a Gemm's output reshaped back: itself if none)."""
    while len(users := graph.consumers.get(name, [])) == 1 and users[0].op_type in LAYOUT_OPS:
        name = users[0].output[0]
    return name


def _reads_as_input(graph: _Graph, reader, value: str, linear_nodes: set[str]) -> bool:
    """Whether `reader` of `value` is one of `linear_nodes` taking it as its input, directly or through views."""
    while reader.op_type in LAYOUT_OPS:
        users = graph.consumers.get(reader.output[0], [])
        if len(users) != 1:
            return False
        value, reader = reader.output[0], users[0]
    return reader.name in linear_nodes and reader.input[0] == value


def _per_tensor(rounding: Quantization, moved: bool) -> Quantization:
    """A rounding read across views must be per tensor: a view moves a per-channel rounding's channel axis."""
    if moved and rounding.axis is not None:
        raise FakeQuantError(f"cannot place the per-channel Q/DQ pair on tensor {rounding.tensor!r}: a reshape or "
                             "transpose lies between it and its Linear / Conv")
    return rounding


def _output_pair(graph: _Graph, tensor: str):
    """(Q, its DequantizeLinear readers) when `tensor` is read by one QuantizeLinear and nothing else, else None."""
    users = graph.consumers.get(tensor, [])
    if len(users) != 1 or users[0].op_type != "QuantizeLinear":
        return None
    dequantizers = graph.consumers.get(users[0].output[0], [])
    if not dequantizers or any(d.op_type != "DequantizeLinear" for d in dequantizers):
        raise FakeQuantError(f"{tensor}: its QuantizeLinear is read by something other than DequantizeLinear")
    return users[0], dequantizers


def _bias_add(graph: _Graph, tensor: str):
    """The Add that adds a constant (the bias) to a MatMul's output `tensor`, read directly or through a Q/DQ pair;
    None if there is none."""
    pair = _output_pair(graph, tensor)
    value = pair[1][0].output[0] if pair and len(pair[1]) == 1 else tensor
    users = graph.consumers.get(value, [])
    if len(users) == 1 and users[0].op_type == "Add" and any(i in graph.constants for i in users[0].input
                                                            if i != value):
        return users[0]
    return None


def read_plan(proto, model: nn.Module) -> list[LayerQuantization]:
    """Every quantized linear layer of the QDQ graph `proto`, mapped onto `model`'s modules; raises
    FakeQuantError naming the tensor of any Q/DQ pair that it cannot place."""
    graph = _Graph(proto)
    weights = _linear_modules(model)
    placed: set[str] = set()          # the DequantizeLinear nodes of weights and outputs
    layers: dict[str, LayerQuantization] = {}
    inputs: dict[str, list[str]] = {}  # an input's DequantizeLinear -> the modules reading it
    for node in proto.graph.node:
        if node.op_type not in LINEAR_NODES or len(node.input) < 2:
            continue
        weight = _source(graph, node.input[1])
        if weight is None:
            continue                  # a float linear layer (excluded block, or not an initializer weight)
        quantize, dequantize, stored = weight
        name, module = _module_of(node, [stored, *(quantize.input[:1] if quantize else [])], weights)
        if name in layers:
            raise FakeQuantError(f"{name} is read by two quantized nodes ({layers[name].node}, {node.name}); the "
                                 "reference quantizes a module once")
        _check_shape(node, graph, stored, module)
        rounding = _quantization(graph, quantize, dequantize, stored)
        layer = LayerQuantization(name, node.name, weight=replace(rounding, axis=_weight_axis(node, graph,
                                                                                               rounding.axis)))
        placed.add(dequantize.name)
        source = _before_layout(graph, node.input[0])
        activation = _source(graph, source)
        if activation is not None and activation[2] not in graph.constants:
            layer = replace(layer, input=_per_tensor(_quantization(graph, *activation), source != node.input[0]))
            inputs.setdefault(activation[1].name, []).append(name)
        layer, dequantizers = _with_output(graph, node, layer)
        placed.update(dequantizers)
        layers[name] = layer
    for dequantize, readers in inputs.items():
        if dequantize not in placed and _rounded_for_all(graph, dequantize, {layers[m].node for m in readers}):
            layers.update((m, replace(layers[m], input_shared=True)) for m in readers)
        placed.add(dequantize)
    _check_placed(graph, proto, placed)
    return list(layers.values())


def _with_output(graph: _Graph, node, layer: LayerQuantization) -> tuple[LayerQuantization, list[str]]:
    """`layer` with the rounding of `node`'s output, if the file has one (a MatMul's before or after its bias
    Add); and the names of the DequantizeLinear nodes that rounding accounts for."""
    out, before_bias = node.output[0], node.op_type == "MatMul"
    viewed = _after_layout(graph, out)
    if before_bias and _output_pair(graph, viewed) is None:
        add = _bias_add(graph, viewed)
        if add is not None:
            out, before_bias = add.output[0], False
            viewed = _after_layout(graph, out)
    pair = _output_pair(graph, viewed)
    if pair is None:
        return layer, []
    quantize, dequantizers = pair
    roundings = [_quantization(graph, quantize, d, viewed) for d in dequantizers]
    return (replace(layer, output=_per_tensor(roundings[0], viewed != out), output_before_bias=before_bias),
            [d.name for d in dequantizers])


def _rounded_for_all(graph: _Graph, dequantize: str, linear_nodes: set[str]) -> bool:
    """Whether an input's rounding reaches more than the linear nodes: True when other nodes read the
    DequantizeLinear's output too and none reads the unrounded tensor (a post-norm block's residual reads the same
    rounded LayerNorm output as its q / k / v layers: the reference then rounds the tensor itself); False when only
    linear nodes (and shape readers) see it. A tensor read both rounded and not, beyond the linear nodes, cannot
    be placed."""
    dq = graph.nodes[dequantize]
    source = _source(graph, dq.output[0])
    tensor = source[2] if source else dq.input[0]
    others = [r for r in graph.consumers.get(dq.output[0], []) if r.op_type not in SHAPE_READERS
              and not _reads_as_input(graph, r, dq.output[0], linear_nodes)]
    if not others:
        return False
    raw = [r for r in graph.consumers.get(tensor, []) if r.op_type not in SHAPE_READERS
           and r.op_type != "QuantizeLinear"]
    if raw or tensor in graph.inputs:
        where = ", ".join(f"{r.op_type} {r.name!r}" for r in others)
        raise FakeQuantError(f"cannot place the Q/DQ pair on tensor {tensor!r}: its rounded value feeds {where}, "
                             "not only the weight, input or output of a quantized Linear / Conv, while other nodes "
                             "read it unrounded")
    return True


def _check_placed(graph: _Graph, proto, placed: set[str]) -> None:
    """Every DequantizeLinear is placed: a weight's, an output's or an input's of a mapped linear node."""
    for node in proto.graph.node:
        if node.op_type == "DequantizeLinear" and node.name not in placed:
            source = _source(graph, node.output[0])
            tensor = source[2] if source else node.input[0]
            where = ", ".join(f"{r.op_type} {r.name!r}" for r in graph.consumers.get(node.output[0], [])) or "no node"
            raise FakeQuantError(f"cannot place the Q/DQ pair on tensor {tensor!r}: it feeds {where}, not the "
                                 "weight, input or output of a quantized Linear / Conv")


def _input_hook(layer: LayerQuantization) -> Callable:
    rounding = layer.input

    def hook(_module, args):
        if not layer.input_shared:
            return (rounding.apply(args[0]), *args[1:])
        args[0].copy_(rounding.apply(args[0]))     # in place: the residual reading this tensor sees it rounded
        return None
    return hook


def _output_hook(layer: LayerQuantization) -> Callable:
    rounding = layer.output

    def hook(module, args, output):
        if not layer.output_before_bias or module.bias is None:
            return rounding.apply(output)
        return rounding.apply(torch.nn.functional.linear(args[0], module.weight)) + module.bias
    return hook


def apply_plan(model: nn.Module, plan: list[LayerQuantization]) -> nn.Module:
    """Fake-quantize `model` in place as `plan` says (a private copy: its quantized weights are new tensors, so a
    tied weight's other user keeps the float one); returns it."""
    modules = dict(model.named_modules())
    for layer in plan:
        module = modules[layer.module]
        if layer.weight is not None:
            with torch.no_grad():
                module.weight = nn.Parameter(layer.weight.apply(module.weight.detach()), requires_grad=False)
        if layer.input is not None:
            module.register_forward_pre_hook(_input_hook(layer))
        if layer.output is not None:
            module.register_forward_hook(_output_hook(layer))
    return model


__all__ = ["FakeQuantError", "LayerQuantization", "Quantization", "apply_plan", "is_qdq", "read_plan"]
