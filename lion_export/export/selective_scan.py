"""`lion.SelectiveScan`: the recurrent form of one LION mixer as ONE custom ONNX node, from one definition.

The node (domain "lion", inputs q, k, v, log_decay; attributes normalize, eps, plugin_namespace) is what
TensorRT's ONNX parser binds to the `lion::SelectiveScan` plugin (the `plugin_namespace` attribute asks for it,
TENSORRT-NOTES.md "How the ONNX parser binds a custom node"). Everywhere else (onnxruntime, the ONNX reference
evaluator, TensorRT without the plugin) the model-local FunctionProto of the same name and domain runs instead;
its body is the bidirectional recurrence of LION-REFERENCE.md in standard ops:

    forward : S_i = lambda_{i-1} S_{i-1} + k_i v_i^T,   z_i = lambda_{i-1} z_{i-1} + k_i
    backward: the same sweep on the sequence flipped along L (so lambda_{i+1} becomes "the previous token's")
    y_i = q_i^T (Sf_i + Sb_i - k_i v_i^T) / (q_i^T (zf_i + zb_i - k_i) + eps)      (no division if normalize=0)

Each sweep is one forward-direction Scan whose carried state is S (B, H, dk, dv) and z (B, H, dk): memory does
not grow with L, only the per-token outputs q_i^T S_i and q_i^T z_i are stacked. The scans run along axis 0 of
sequence-major copies, and the backward sweep flips its inputs and outputs with Slice (step -1) instead of using
Scan's reverse direction: the reference evaluator implements neither other scan axes nor reverse directions.
The body computes in fp32 (inputs are Cast, the output is CastLike'd back), so an fp16 graph keeps its decay
exponentials in fp32.

The torch side of the same definition, `selective_scan_node`, emits the node (torch.onnx.ops.symbolic: an ONNX
node straight from the traced graph, with no torch op to register or translation table to keep) while
torch.onnx.export traces a model inside `route_recurrent_to_selective_scan()`; `selective_scan_function(opset)`
builds its function body. Op type, domain, inputs and attribute defaults are the constants below, nowhere else.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from itertools import count

import onnx
import torch
from onnx import TensorProto, helper

from ..forms import override_form

DOMAIN = "lion"
OP_TYPE = "SelectiveScan"
DOMAIN_VERSION = 1
PLUGIN_NAMESPACE = "lion"
INPUTS = ("q", "k", "v", "log_decay")
OUTPUTS = ("y",)
DEFAULT_NORMALIZE = 1
DEFAULT_EPS = 1e-6


def node_attributes(normalize: bool, eps: float) -> dict[str, int | float | str]:
    """Every attribute, always written on the node (TensorRT's parser only warns about a missing one)."""
    return {"normalize": int(bool(normalize)), "eps": float(eps), "plugin_namespace": PLUGIN_NAMESPACE}


def selective_scan_node(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, log_decay: torch.Tensor, *,
                        normalize: bool, eps: float) -> torch.Tensor:
    """Trace-time stand-in for the recurrent form: one `lion.SelectiveScan` node, output shaped and typed like v.

    Only meaningful under torch.onnx.export; the override hook hands it log decays already expanded to (B, H, L).
    """
    return torch.onnx.ops.symbolic(f"{DOMAIN}::{OP_TYPE}", (q, k, v, log_decay), node_attributes(normalize, eps),
                                   dtype=v.dtype, shape=v.shape, version=DOMAIN_VERSION)


@contextmanager
def route_recurrent_to_selective_scan() -> Iterator[None]:
    """While active, every `lion_attention(form="recurrent")` call becomes one `lion.SelectiveScan` node."""
    with override_form("recurrent", selective_scan_node):
        yield


class _Body:
    """A tiny node builder: each call appends one node and returns its fresh output name, so the body below
    reads like the equations instead of a list of NodeProtos."""

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

    def attribute(self, kind: str, name: str) -> str:
        """A Constant whose value is the function attribute `name` (value_int / value_float)."""
        out = f"{self._prefix}attr_{name}"
        node = helper.make_node("Constant", [], [out])
        attr_type = onnx.AttributeProto.FLOAT if kind == "value_float" else onnx.AttributeProto.INT
        node.attribute.append(helper.make_attribute_ref(kind, attr_type, ref_attr_name=name))
        self.nodes.append(node)
        return out


def _step_graph() -> onnx.GraphProto:
    """One token of both sweeps at once: S' = lam S + k [v, 1]^T, emitting q^T S' (numerator and normaliser).

    Four nodes and no constants: every reshape is done once outside the Scan, because onnxruntime pays a fixed
    cost per node per step, which dominates a tiny per-token recurrence. Carrying [v, 1] folds the normaliser
    z into the state's last column, so one MatMul reads q^T S and q^T z together.
    """
    body = _Body("step_")
    outer = body.op("Mul", "k_t", "v_t")                                    # (2B, H, dk, 1) * (2B, H, 1, dv+1)
    body.nodes.append(helper.make_node("Add", [body.op("Mul", "lam_t", "s"), outer], ["s_out"]))
    body.nodes.append(helper.make_node("MatMul", ["q_t", "s_out"], ["read_t"]))   # (2B, H, 1, dv+1)

    def value(name: str) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, [None] * 4)

    return helper.make_graph(body.nodes, "selective_scan_step",
                             [value(n) for n in ("s", "q_t", "k_t", "v_t", "lam_t")],
                             [value("s_out"), value("read_t")])


def selective_scan_function(opset: int) -> onnx.FunctionProto:
    """The model-local function `lion.SelectiveScan` for a model importing the standard domain at `opset`.

    The backward sweep is the forward sweep on the sequence flipped along L, and both run in ONE Scan over a
    batch of 2B: the forward sequences, then the flipped ones. Scan runs along axis 0 in the forward direction
    only, since the ONNX reference evaluator implements no other axis or direction: inputs are made
    sequence-major first.
    """
    body = _Body("")
    qf, kf, vf, a = (body.op("Cast", name, to=TensorProto.FLOAT) for name in INPUTS)
    last = body.ints(-1)
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0])
    one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    batch_heads_len = body.op("Shape", vf, end=3)
    v1 = body.op("Concat", vf, body.op("ConstantOfShape", body.op("Concat", batch_heads_len, body.ints(1), axis=0),
                                       value=one), axis=-1)                  # [v, 1]: (B, H, L, dv+1)

    def flip(x: str) -> str:
        return body.op("Slice", x, body.ints(-1), body.ints(-(2 ** 63)), body.ints(0), body.ints(-1))

    def both_directions(x: str, perm: list[int]) -> str:
        """(B, H, L, ...) -> sequence-major (L, 2B, H, ...): the sequences, then the same sequences flipped."""
        seq_major = body.op("Transpose", x, perm=perm)
        return body.op("Concat", seq_major, flip(seq_major), axis=1)

    q_s = body.op("Unsqueeze", both_directions(qf, [2, 0, 1, 3]), body.ints(-2))      # (L, 2B, H, 1, dk)
    k_s = body.op("Unsqueeze", both_directions(kf, [2, 0, 1, 3]), last)               # (L, 2B, H, dk, 1)
    v_s = body.op("Unsqueeze", both_directions(v1, [2, 0, 1, 3]), body.ints(-2))      # (L, 2B, H, 1, dv+1)
    lam_s = body.op("Exp", both_directions(a, [2, 0, 1]))                             # (L, 2B, H)
    # state i is decayed by the previous token's lambda (lambda_{i-1} forward, lambda_{i+1} on the flipped half);
    # the first token's state starts from zero, so its decay is 1
    first = body.op("ConstantOfShape", body.op("Concat", body.ints(1), body.op("Shape", lam_s, start=1), axis=0),
                    value=one)                                                        # (1, 2B, H)
    decay_in = body.op("Concat", first, body.op("Slice", lam_s, body.ints(0), body.ints(-1), body.ints(0)), axis=0)
    lam_in = body.op("Unsqueeze", decay_in, body.ints(-2, -1))                        # (L, 2B, H, 1, 1)

    state0 = body.op("ConstantOfShape", body.op("Concat", body.op("Shape", q_s, start=1, end=3),
                                                body.op("Shape", k_s, start=3, end=4),
                                                body.op("Shape", v_s, start=4), axis=0), value=zero)
    _, reads = body.op("Scan", state0, q_s, k_s, v_s, lam_in, outputs=2, body=_step_graph(), num_scan_inputs=4)
    read_f, read_b = body.op("Split", body.op("Squeeze", reads, body.ints(3)), axis=1, num_outputs=2, outputs=2)
    total = body.op("Transpose", body.op("Add", read_f, flip(read_b)), perm=[1, 2, 0, 3])  # (B, H, L, dv+1)

    # the diagonal k_i [v_i, 1]^T is in both sweeps' states: subtract it once
    diag = body.op("ReduceSum", body.op("Mul", qf, kf), last, keepdims=1)                # q_i . k_i, (B, H, L, 1)
    total = body.op("Sub", total, body.op("Mul", diag, v1))
    dv = body.op("Shape", vf, start=3)
    num = body.op("Slice", total, body.ints(0), dv, last)
    den = body.op("Slice", total, dv, body.ints(2 ** 62), last)
    divisor = body.op("Where", body.op("Cast", body.attribute("value_int", "normalize"), to=TensorProto.BOOL),
                      body.op("Add", den, body.attribute("value_float", "eps")),
                      body.op("Constant", value_float=1.0))
    body.nodes.append(helper.make_node("CastLike", [body.op("Div", num, divisor), "v"], list(OUTPUTS)))

    defaults = [helper.make_attribute("normalize", DEFAULT_NORMALIZE),
                helper.make_attribute("eps", DEFAULT_EPS),
                helper.make_attribute("plugin_namespace", PLUGIN_NAMESPACE)]
    return helper.make_function(DOMAIN, OP_TYPE, list(INPUTS), list(OUTPUTS), body.nodes,
                                [helper.make_opsetid("", opset)], attribute_protos=defaults,
                                doc_string="LION bidirectional recurrence (LION-REFERENCE.md, recurrent form)")


def attach_selective_scan_function(model: onnx.ModelProto) -> None:
    """Add the local function (replacing any of the same name) and the `lion` opset import, in place."""
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    kept = [f for f in model.functions if (f.domain, f.name) != (DOMAIN, OP_TYPE)]
    del model.functions[:]
    model.functions.extend([*kept, selective_scan_function(opset)])
    if not any(o.domain == DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(DOMAIN, DOMAIN_VERSION))


__all__ = ["DOMAIN", "OP_TYPE", "DOMAIN_VERSION", "PLUGIN_NAMESPACE", "INPUTS", "OUTPUTS", "node_attributes",
           "selective_scan_node", "route_recurrent_to_selective_scan", "selective_scan_function",
           "attach_selective_scan_function"]
