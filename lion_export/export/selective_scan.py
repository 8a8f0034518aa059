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
    """One token of one sweep: S' = lam S + k v^T, z' = lam z + k; emits q^T S' and q^T z'."""
    body = _Body("step_")
    last, before_last = body.ints(-1), body.ints(-2)
    lam_state = body.op("Unsqueeze", "lam_t", body.ints(-2, -1))                   # (B, H, 1, 1)
    outer = body.op("Mul", body.op("Unsqueeze", "k_t", last), body.op("Unsqueeze", "v_t", before_last))
    body.nodes.append(helper.make_node("Add", [body.op("Mul", lam_state, "s"), outer], ["s_out"]))
    lam_norm = body.op("Unsqueeze", "lam_t", last)                                  # (B, H, 1)
    body.nodes.append(helper.make_node("Add", [body.op("Mul", lam_norm, "z"), "k_t"], ["z_out"]))
    read = body.op("MatMul", body.op("Unsqueeze", "q_t", before_last), "s_out")     # (B, H, 1, dv)
    body.nodes.append(helper.make_node("Squeeze", [read, before_last], ["num_t"]))
    body.nodes.append(helper.make_node("ReduceSum", [body.op("Mul", "q_t", "z_out"), last], ["den_t"],
                                       keepdims=0))

    def value(name: str, rank: int) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, [None] * rank)

    return helper.make_graph(
        body.nodes, "selective_scan_step",
        [value("s", 4), value("z", 3), value("q_t", 3), value("k_t", 3), value("v_t", 3), value("lam_t", 2)],
        [value("s_out", 4), value("z_out", 3), value("num_t", 3), value("den_t", 2)])


def _sweep(body: _Body, q: str, k: str, v: str, a: str, state0: str, norm0: str, ones_bh: str) -> tuple[str, str]:
    """One direction over sequence-major inputs (L first) as given: state i is decayed by lambda_{i-1}
    (lambda_{-1} := 1). Returns the stacked q_i^T S_i (L, B, H, dv) and q_i^T z_i (L, B, H)."""
    shifted = body.op("Exp", body.op("Slice", a, body.ints(0), body.ints(-1), body.ints(0)))  # lambda_0..L-2
    decay_in = body.op("Concat", ones_bh, shifted, axis=0)
    _, _, num, den = body.op("Scan", state0, norm0, q, k, v, decay_in, outputs=4, body=_step_graph(),
                             num_scan_inputs=4)
    return num, den


def selective_scan_function(opset: int) -> onnx.FunctionProto:
    """The model-local function `lion.SelectiveScan` for a model importing the standard domain at `opset`."""
    body = _Body("")
    qf, kf, vf, a = (body.op("Cast", name, to=TensorProto.FLOAT) for name in INPUTS)
    last = body.ints(-1)
    # Scan runs along axis 0 (the only axis the reference evaluator implements): work sequence-major
    q_s, k_s, v_s = (body.op("Transpose", x, perm=[2, 0, 1, 3]) for x in (qf, kf, vf))
    a_s = body.op("Transpose", a, perm=[2, 0, 1])

    def flip(x: str) -> str:
        return body.op("Slice", x, body.ints(-1), body.ints(-(2 ** 63)), body.ints(0), body.ints(-1))

    batch_heads = body.op("Shape", kf, end=2)
    dk, dv = body.op("Shape", kf, start=3), body.op("Shape", vf, start=3)
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0])
    one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    state0 = body.op("ConstantOfShape", body.op("Concat", batch_heads, dk, dv, axis=0), value=zero)
    norm0 = body.op("ConstantOfShape", body.op("Concat", batch_heads, dk, axis=0), value=zero)
    ones_bh = body.op("ConstantOfShape", body.op("Concat", body.ints(1), batch_heads, axis=0), value=one)

    num_f, den_f = _sweep(body, q_s, k_s, v_s, a_s, state0, norm0, ones_bh)
    num_b, den_b = _sweep(body, flip(q_s), flip(k_s), flip(v_s), flip(a_s), state0, norm0, ones_bh)
    num_s = body.op("Add", num_f, flip(num_b))                                           # (L, B, H, dv)
    den_s = body.op("Add", den_f, flip(den_b))                                           # (L, B, H)
    num_both = body.op("Transpose", num_s, perm=[1, 2, 0, 3])
    den_both = body.op("Transpose", den_s, perm=[1, 2, 0])

    # the diagonal k_i v_i^T is in both sweeps' states: subtract it once
    diag = body.op("ReduceSum", body.op("Mul", qf, kf), last, keepdims=0)                # q_i . k_i, (B, H, L)
    num = body.op("Sub", num_both, body.op("Mul", body.op("Unsqueeze", diag, last), vf))
    den = body.op("Sub", den_both, diag)
    divisor = body.op("Where", body.op("Cast", body.attribute("value_int", "normalize"), to=TensorProto.BOOL),
                      body.op("Add", body.op("Unsqueeze", den, last), body.attribute("value_float", "eps")),
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
