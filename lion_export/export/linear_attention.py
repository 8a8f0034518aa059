"""The recurrent form in standard ONNX: each `lion.SelectiveScan` node rewritten as two ai.onnx LinearAttention
nodes (opset >= 27), so the file needs no custom op and runs on any runtime with its own kernel for the op.

LinearAttention is a causal recurrence over packed (B, T, H*d) tensors: with update rule "gated",
S_t = exp(g_t) S_{t-1} + k_t v_t^T and o_t = scale * q_t^T S_t; "linear" is the same without the decay. LION's
two sweeps (docs/maths.md, "The recurrent form in standard ONNX") are two such nodes:

    forward : g_i = a_{i-1} (0 for the first token), on q, k, [v, 1]       -> F_i, with the normaliser f_i
    backward: the same on the sequence reversed along T, reversed back     -> B_i, b_i
    y_i = (q_i^T (F_i + B_i) - (q_i . k_i) [v_i, 1])[:dv] / (... [dv] + eps)     (no division if normalize=0)

Appending a column of ones to the value makes each node yield numerator and normaliser at once; the diagonal
term, in both sweeps' states, is subtracted once; scale is 1.0 (the model has already scaled q). LION-LIT has no
decay and uses the "linear" rule; LION-D's per-head decay arrives already broadcast to (B, H, L), like LION-S's.

The rewrite works on the traced graph, after the opset conversion, so the trace path stays the one the `lion`
node uses: the same hook, the same node count check, padding masks and natural-order walks included (they act
on q, k, v and the decays before the node). Everything between the node's inputs and output computes in fp32:
q, k, v are Cast, the output is CastLike'd back to v's type.
"""
from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from ..scan_op import DEFAULT_EPS, DEFAULT_NORMALIZE, DOMAIN, EPS, LINEAR_ATTENTION, NORMALIZE, OP_TYPE, is_scan_op
from .node_builder import NodeBuilder

#: update rules of LinearAttention this rewrite uses: with a decay (LION-D, LION-S) or without (LION-LIT)
GATED, LINEAR = "gated", "linear"


def _attribute(node: onnx.NodeProto, name: str, default: float) -> float:
    found = [helper.get_attribute_value(a) for a in node.attribute if a.name == name]
    return found[0] if found else default


def _linear_attention_nodes(scan: onnx.NodeProto, heads: int, rule: str, index: int) -> list[onnx.NodeProto]:
    """The nodes that compute what `scan` (one lion.SelectiveScan node) computes, writing its output name."""
    body = NodeBuilder(f"{LINEAR_ATTENTION}_{index}/")
    q, k, v, log_decay = scan.input
    qf, kf, vf = (body.op("Cast", name, to=TensorProto.FLOAT) for name in (q, k, v))
    v1 = body.with_ones_column(vf)                                                   # (B, H, L, dv+1)

    def packed(x: str) -> str:
        """(B, H, L, d) -> (B, L, H*d), the layout LinearAttention takes."""
        return body.op("Reshape", body.op("Transpose", x, perm=[0, 2, 1, 3]), body.ints(0, 0, -1))

    def into_state(a: str) -> str:
        """(B, L, H) log decays -> the decay into each state: the previous token's, 0 for the first token."""
        return body.op("Pad", body.op("Slice", a, body.ints(0), body.ints(-1), body.ints(1)),
                       body.ints(0, 1, 0, 0, 0, 0))

    def sweep(qp: str, kp: str, vp: str, a: str | None, name: str) -> str:
        inputs = (qp, kp, vp) if a is None else (qp, kp, vp, "", into_state(a))
        out, _state = body.op(LINEAR_ATTENTION, *inputs, outputs=2, q_num_heads=heads, kv_num_heads=heads,
                              update_rule=rule, scale=1.0)            # the schema requires present_state too
        body.nodes[-1].name = f"{LINEAR_ATTENTION}_{index}_{name}"       # the names a runtime's profile shows
        return out

    qp, kp, vp = packed(qf), packed(kf), packed(v1)
    a = (body.op("Transpose", body.op("Cast", log_decay, to=TensorProto.FLOAT), perm=[0, 2, 1])   # (B, L, H)
         if rule == GATED else None)
    forward = sweep(qp, kp, vp, a, "forward")
    backward = sweep(*(body.reverse(x, 1) for x in (qp, kp, vp)), None if a is None else body.reverse(a, 1), "backward")
    backward = body.reverse(backward, 1)
    total = body.op("Transpose", body.op("Reshape", body.op("Add", forward, backward), body.ints(0, 0, heads, -1)),
                    perm=[0, 2, 1, 3])                                               # (B, H, L, dv+1)
    diag = body.op("ReduceSum", body.op("Mul", qf, kf), body.ints(-1), keepdims=1)  # q_i . k_i
    total = body.op("Sub", total, body.op("Mul", diag, v1))
    dv = body.op("Shape", vf, start=3)
    last = body.ints(-1)
    y = body.op("Slice", total, body.ints(0), dv, last)
    if _attribute(scan, NORMALIZE, DEFAULT_NORMALIZE):
        den = body.op("Slice", total, dv, body.ints(2 ** 62), last)
        eps = body.op("Constant", value_float=float(_attribute(scan, EPS, DEFAULT_EPS)))
        y = body.op("Div", y, body.op("Add", den, eps))
    body.nodes.append(helper.make_node("CastLike", [y, v], list(scan.output)))
    return body.nodes


def _names_read(nodes) -> set[str]:
    """Every value name the nodes read, inside control-flow subgraphs too (they may read outer-scope values)."""
    names = set()
    for node in nodes:
        names.update(node.input)
        for attr in node.attribute:
            for graph in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else attr.graphs:
                names |= _names_read(graph.node)
    return names


def _drop_unread(graph: onnx.GraphProto) -> None:
    """Remove nodes none of whose outputs is read: LION-LIT's all-zero log decays, which "linear" never reads."""
    read = {o.name for o in graph.output}
    kept = []
    for node in reversed(graph.node):         # nodes are in topological order: consumers come after producers
        if any(o in read for o in node.output):
            kept.append(node)
            read |= _names_read([node])
    del graph.node[:]
    graph.node.extend(reversed(kept))


def replace_selective_scans(model: onnx.ModelProto, heads: int, rule: str) -> int:
    """Rewrite every lion.SelectiveScan node of `model` in place as LinearAttention nodes; returns how many.

    heads: the mixers' head count (LinearAttention's q_num_heads = kv_num_heads); rule: GATED or LINEAR. The
    `lion` local function and opset import go once no lion node is left. The model's standard opset must be at
    least scan_op.LINEAR_ATTENTION_OPSET (the caller checks it before tracing).
    """
    if rule not in (GATED, LINEAR):
        raise ValueError(f"update rule must be {GATED!r} or {LINEAR!r}, got {rule!r}")
    nodes, replaced = [], 0
    for node in model.graph.node:
        if is_scan_op(node.domain, node.op_type):
            nodes.extend(_linear_attention_nodes(node, heads, rule, replaced))
            replaced += 1
        else:
            nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    _drop_unread(model.graph)
    if not any(node.domain == DOMAIN for node in model.graph.node):
        kept_functions = [f for f in model.functions if (f.domain, f.name) != (DOMAIN, OP_TYPE)]
        del model.functions[:]
        model.functions.extend(kept_functions)
        kept_opsets = [o for o in model.opset_import if o.domain != DOMAIN]
        del model.opset_import[:]
        model.opset_import.extend(kept_opsets)
    return replaced


__all__ = ["GATED", "LINEAR", "replace_selective_scans"]
