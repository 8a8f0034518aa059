"""A tiny ONNX node builder shared by the graph code the exporter writes by hand (the `lion.SelectiveScan` local
function, the LinearAttention rewrite): each call appends one node and returns its fresh output name, so the
code reads like the equations instead of a list of NodeProtos."""
from __future__ import annotations

from itertools import count

import onnx
from onnx import helper


class NodeBuilder:
    """Nodes in the order they were asked for; every output name starts with `prefix` (unique per builder)."""

    def __init__(self, prefix: str) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self._names = count()
        self._prefix = prefix

    def op(self, op_type: str, *inputs: str, outputs: int = 1, **attrs: object) -> str | list[str]:
        names = [f"{self._prefix}{op_type.lower()}_{next(self._names)}" for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, **attrs))
        return names[0] if outputs == 1 else names

    def ints(self, *values: int) -> str:
        return self.op("Constant", value_ints=list(values))

    def reverse(self, x: str, axis: int) -> str:
        """x with its `axis` flipped (a Slice of step -1: the one flip every runtime and the reference evaluator
        implement)."""
        return self.op("Slice", x, self.ints(-1), self.ints(-(2 ** 63)), self.ints(axis), self.ints(-1))

    def with_ones_column(self, x: str) -> str:
        """fp32 x (B, H, L, d) -> [x, 1] (B, H, L, d + 1): the value with a column of ones, so that one product
        yields LION's numerator and its normaliser together."""
        one = helper.make_tensor("one", onnx.TensorProto.FLOAT, [1], [1.0])
        ones = self.op("ConstantOfShape", self.op("Concat", self.op("Shape", x, end=3), self.ints(1), axis=0),
                       value=one)
        return self.op("Concat", x, ones, axis=-1)

    def attribute(self, kind: str, name: str) -> str:
        """A Constant whose value is the function attribute `name` (value_int / value_float)."""
        out = f"{self._prefix}attr_{name}"
        node = helper.make_node("Constant", [], [out])
        attr_type = onnx.AttributeProto.FLOAT if kind == "value_float" else onnx.AttributeProto.INT
        node.attribute.append(helper.make_attribute_ref(kind, attr_type, ref_attr_name=name))
        self.nodes.append(node)
        return out


__all__ = ["NodeBuilder"]
