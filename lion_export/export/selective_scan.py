"""`lion.SelectiveScan`: the recurrent form of one LION mixer as ONE custom ONNX node, from one definition.

The node (domain "lion", inputs q, k, v, log_decay; attributes normalize, eps, plugin_namespace) is what
TensorRT's ONNX parser binds to the `lion::SelectiveScan` plugin (the `plugin_namespace` attribute asks for it).
Everywhere else (onnxruntime, the ONNX reference evaluator, TensorRT without the plugin) the model-local
FunctionProto of the same name and domain runs instead; its body is the bidirectional recurrence (docs/maths.md,
the recurrent form) in standard ops:

    forward : S_i = lambda_{i-1} S_{i-1} + k_i v_i^T,   z_i = lambda_{i-1} z_{i-1} + k_i
    backward: the same sweep on the sequence flipped along L (so lambda_{i+1} becomes "the previous token's")
    y_i = q_i^T (Sf_i + Sb_i - k_i v_i^T) / (q_i^T (zf_i + zb_i - k_i) + eps)      (no division if normalize=0)

Both sweeps run as one forward-direction Scan over blocks of BLOCK tokens (the backward sweep is the forward one
on the sequence flipped by Slice, step -1, stacked as a second half of the batch), carrying one dk x (dv+1) state:
memory does not grow with L beyond the per-token values themselves. The reference evaluator implements neither
reverse scans nor other scan axes, hence the flips and the sequence-major layout. The body computes in fp32
(inputs are Cast, the output is CastLike'd back), so an fp16 graph keeps its decay exponentials in fp32.

The torch side of the same definition, `selective_scan_node`, emits the node (torch.onnx.ops.symbolic: an ONNX
node straight from the traced graph, with no torch op to register or translation table to keep) while
torch.onnx.export traces a model inside `route_recurrent_to_selective_scan()`; `selective_scan_function(opset)`
builds its function body. Op type, domain, inputs and attribute defaults come from lion_export.scan_op.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import onnx
import torch
from onnx import TensorProto, helper

from ..forms import override_form
from ..scan_op import (DEFAULT_EPS, DEFAULT_NORMALIZE, DOMAIN, DOMAIN_VERSION, EPS, INPUTS, NORMALIZE, OP_TYPE,
                       OUTPUTS, PLUGIN_NAMESPACE, PLUGIN_NAMESPACE_ATTRIBUTE, node_attributes)
from .node_builder import NodeBuilder

BLOCK = 16            # tokens per Scan step of the local function (see selective_scan_function)


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


def _step_graph() -> onnx.GraphProto:
    """One block of BLOCK tokens of both sweeps: the block reads the state carried in from the tokens before it,
    then the state moves to the block's end. Four nodes, no constants: everything per token (decay weights,
    the block's own causal attention) is computed for all blocks at once outside the Scan."""
    body = NodeBuilder("step_")
    body.nodes.append(helper.make_node("MatMul", ["q_t", "s"], ["read_t"]))      # (2B, H, T, dv+1)
    added = body.op("MatMul", "kt_t", "v_t")                                        # sum_j w_j k_j [v_j, 1]^T
    body.nodes.append(helper.make_node("Add", [body.op("Mul", "decay_t", "s"), added], ["s_out"]))

    def value(name: str) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, [None] * 4)

    return helper.make_graph(body.nodes, "selective_scan_block",
                             [value(n) for n in ("s", "q_t", "kt_t", "v_t", "decay_t")],
                             [value("s_out"), value("read_t")])


def selective_scan_function(opset: int) -> onnx.FunctionProto:
    """The model-local function `lion.SelectiveScan` for a model importing the standard domain at `opset`.

    Each sweep is the causal recurrence S_i = g_i S_{i-1} + k_i [v_i, 1]^T, read as q_i^T S_i (g_i: the previous
    token's lambda; carrying [v, 1] folds the normaliser z into the state's last column). The backward sweep is
    the same recurrence on the sequence flipped along L, and both run as one batch of 2B. The Scan steps over
    blocks of BLOCK tokens, carrying the dk x (dv+1) state between blocks: inside a block the recurrence is
    unrolled into a BLOCK x BLOCK causal attention computed for all blocks at once. Per-token Scan steps would
    spend their time on three full passes over the state for every token; per block it is one, plus small
    matrix products, which is what makes this fallback run several times faster than a token loop.
    Scan runs along axis 0 in the forward direction only (all the ONNX reference evaluator implements), on
    sequence-major, block-major copies. Sequences are padded at the end to a multiple of BLOCK with zeros, which
    come after every real token in sweep order and so change nothing.
    """
    body = NodeBuilder("")
    qf, kf, vf, a = (body.op("Cast", name, to=TensorProto.FLOAT) for name in INPUTS)
    last = body.ints(-1)
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0])
    v1 = body.with_ones_column(vf)

    def both_directions(x: str, perm: list[int]) -> str:
        """(B, H, L, ...) -> sequence-major (L, 2B, H, ...): the sequences, then the same sequences flipped."""
        seq_major = body.op("Transpose", x, perm=perm)
        return body.op("Concat", seq_major, body.reverse(seq_major, 0), axis=1)

    q_s, k_s, v_s = (both_directions(x, [2, 0, 1, 3]) for x in (qf, kf, v1))       # (L, 2B, H, d)
    a_s = both_directions(a, [2, 0, 1])                                              # (L, 2B, H)
    # g_i = log of the decay into state i: the previous token's (log lambda_{i-1}), 0 for the first token
    g_s = body.op("Concat", body.op("ConstantOfShape", body.op("Concat", body.ints(1), body.op("Shape", a_s, start=1),
                                                                axis=0), value=zero),
                  body.op("Slice", a_s, body.ints(0), body.ints(-1), body.ints(0)), axis=0)

    # pad L to a multiple of BLOCK, then view as (N, BLOCK, 2B, H, ...) -> block-major (N, 2B, H, BLOCK, ...)
    length = body.op("Shape", a_s, end=1)
    block = body.ints(BLOCK)
    pad = body.op("Mod", body.op("Sub", block, body.op("Mod", length, block)), block)

    def blocks(x: str, rank: int) -> str:
        pads = body.op("Concat", body.ints(0), body.ints(*[0] * (rank - 1)), pad, body.ints(*[0] * (rank - 1)),
                       axis=0)
        padded = body.op("Pad", x, pads)
        split = body.op("Reshape", padded, body.op("Concat", body.ints(-1, BLOCK), body.op("Shape", x, start=1),
                                                  axis=0))
        return body.op("Transpose", split, perm=[0, 2, 3, 1, 4] if rank == 4 else [0, 2, 3, 1])

    q_b, k_b, v_b, g_b = blocks(q_s, 4), blocks(k_s, 4), blocks(v_s, 4), blocks(g_s, 3)

    # exponents as direct sums within a block, all <= 0: into token i from the block start (inclusive cumsum),
    # from token j to the block end (reverse exclusive cumsum), across the whole block
    axis = body.op("Constant", value_int=-1)                                         # CumSum wants a scalar
    into = body.op("CumSum", g_b, axis)                                              # sum_{t=s}^{i} g_t
    to_end = body.op("CumSum", g_b, axis, exclusive=1, reverse=1)                    # sum_{t=j+1}^{e} g_t
    across = body.op("Exp", body.op("ReduceSum", g_b, last, keepdims=1))             # (N, 2B, H, 1)
    # intra-block causal weights exp(sum_{t=j+1}^{i} g_t) for j <= i (the diagonal included: both sweeps'
    # states hold token i itself; the overlap is subtracted once below). Each exponent is a direct sum over its
    # own span, row j of a masked copy of g summed along t (docs/maths.md, "Why the numbers stay exact"), not a difference
    # of two prefix sums: saturated gates give log decays of -60 per token, prefix sums of -1000 within a block,
    # and their difference would lose the small exponents that matter to fp32 rounding.
    def block_mask(name: str, keep: Callable[[int, int], bool]) -> str:
        return body.op("Constant", value=helper.make_tensor(
            name, TensorProto.BOOL, [BLOCK, BLOCK], [keep(r, c) for r in range(BLOCK) for c in range(BLOCK)]))

    after_row = block_mask("after_row", lambda j, t: t > j)
    spans = body.op("CumSum", body.op("Where", after_row, body.op("Unsqueeze", g_b, body.ints(-2)),
                                      body.op("Constant", value_float=0.0)), axis)   # [j, i] = sum_{t=j+1}^{i} g_t
    pair = body.op("Transpose", spans, perm=[0, 1, 2, 4, 3])                         # [i, j]
    causal = block_mask("causal", lambda i, j: j <= i)
    weights = body.op("Where", causal, body.op("Exp", pair), body.op("Constant", value_float=0.0))
    scores = body.op("Mul", body.op("MatMul", q_b, body.op("Transpose", k_b, perm=[0, 1, 2, 4, 3])), weights)
    intra = body.op("MatMul", scores, v_b)                                           # (N, 2B, H, T, dv+1)

    q_in = body.op("Mul", q_b, body.op("Exp", body.op("Unsqueeze", into, last)))
    k_out = body.op("Transpose", body.op("Mul", k_b, body.op("Exp", body.op("Unsqueeze", to_end, last))),
                    perm=[0, 1, 2, 4, 3])                                            # (N, 2B, H, dk, T)
    state0 = body.op("ConstantOfShape", body.op("Concat", body.op("Shape", q_b, start=1, end=3),
                                                body.op("Shape", k_b, start=4), body.op("Shape", v_b, start=4),
                                                axis=0), value=zero)
    _, reads = body.op("Scan", state0, q_in, k_out, v_b, body.op("Unsqueeze", across, last), outputs=2,
                       body=_step_graph(), num_scan_inputs=4)
    swept = body.op("Add", intra, reads)                                             # (N, 2B, H, T, dv+1)
    seq = body.op("Reshape", body.op("Transpose", swept, perm=[0, 3, 1, 2, 4]),
                  body.op("Concat", last, body.op("Shape", v_s, start=1), axis=0))   # (Lp, 2B, H, dv+1)
    seq = body.op("Slice", seq, body.ints(0), length, body.ints(0))
    read_f, read_b = body.op("Split", seq, axis=1, num_outputs=2, outputs=2)
    total = body.op("Transpose", body.op("Add", read_f, body.reverse(read_b, 0)),
                    perm=[1, 2, 0, 3])                                               # (B, H, L, dv+1)

    # the diagonal k_i [v_i, 1]^T is in both sweeps' states: subtract it once
    diag = body.op("ReduceSum", body.op("Mul", qf, kf), last, keepdims=1)                # q_i . k_i, (B, H, L, 1)
    total = body.op("Sub", total, body.op("Mul", diag, v1))
    dv = body.op("Shape", vf, start=3)
    num = body.op("Slice", total, body.ints(0), dv, last)
    den = body.op("Slice", total, dv, body.ints(2 ** 62), last)
    divisor = body.op("Where", body.op("Cast", body.attribute("value_int", NORMALIZE), to=TensorProto.BOOL),
                      body.op("Add", den, body.attribute("value_float", EPS)),
                      body.op("Constant", value_float=1.0))
    body.nodes.append(helper.make_node("CastLike", [body.op("Div", num, divisor), "v"], list(OUTPUTS)))

    defaults = [helper.make_attribute(NORMALIZE, DEFAULT_NORMALIZE),
                helper.make_attribute(EPS, DEFAULT_EPS),
                helper.make_attribute(PLUGIN_NAMESPACE_ATTRIBUTE, PLUGIN_NAMESPACE)]
    return helper.make_function(DOMAIN, OP_TYPE, list(INPUTS), list(OUTPUTS), body.nodes,
                                [helper.make_opsetid("", opset)], attribute_protos=defaults,
                                doc_string="LION bidirectional recurrence (docs/maths.md, the recurrent form)")


def attach_selective_scan_function(model: onnx.ModelProto) -> None:
    """Add the local function (replacing any of the same name) and the `lion` opset import, in place."""
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    kept = [f for f in model.functions if (f.domain, f.name) != (DOMAIN, OP_TYPE)]
    del model.functions[:]
    model.functions.extend([*kept, selective_scan_function(opset)])
    if not any(o.domain == DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(DOMAIN, DOMAIN_VERSION))


__all__ = ["selective_scan_node", "route_recurrent_to_selective_scan", "selective_scan_function",
           "attach_selective_scan_function"]
