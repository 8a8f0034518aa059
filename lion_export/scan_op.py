"""`lion.SelectiveScan`: the recurrent LION mixer as one custom ONNX node; its identity and contract, here only.

The exporter writes the node (export/selective_scan.py), the TensorRT plugins implement it (plugins/), the
precision check and the engine builder read it (verify/precision.py, engine/graph_file.py): all of them take the
names below from this module, so they cannot drift apart.

TensorRT's ONNX parser binds a node to a plugin creator when the node carries a `plugin_namespace` attribute: it
looks the creator up by (op type, version "1", that namespace) and hands it the node's other attributes as plugin
fields. Everywhere else (onnxruntime, the ONNX reference evaluator, TensorRT without the plugin) the model-local
function of the same domain and name runs instead.
"""
from __future__ import annotations

DOMAIN = "lion"
OP_TYPE = "SelectiveScan"
DOMAIN_VERSION = 1
#: the plugin's namespace, which the node's `plugin_namespace` attribute names
PLUGIN_NAMESPACE = "lion"
#: TensorRT's ONNX parser looks plugins up as version "1"; the decorator API allows no other
PLUGIN_VERSION = "1"
#: the plugin as TensorRT names it: "lion::SelectiveScan"
PLUGIN_ID = f"{PLUGIN_NAMESPACE}::{OP_TYPE}"

#: q, k (B, H, L, dk) and v (B, H, L, dv) of one dtype; log_decay (B, H, L) always fp32
INPUTS = ("q", "k", "v", "log_decay")
LOG_DECAY_INPUT = INPUTS.index("log_decay")
#: y (B, H, L, dv), v's dtype
OUTPUTS = ("y",)

#: the attributes the op computes with (the plugin's fields), and their defaults
NORMALIZE = "normalize"
EPS = "eps"
DEFAULT_NORMALIZE = 1
DEFAULT_EPS = 1e-6
#: the attribute that asks TensorRT's parser for the plugin (not a plugin field)
PLUGIN_NAMESPACE_ATTRIBUTE = "plugin_namespace"


#: how a recurrent export writes each LION pass: "lion", this op (the default), or "onnx", standard ai.onnx
#: LinearAttention nodes (two per pass, export/linear_attention.py); files record the choice under SCAN_OP_KEY
DEFAULT_SCAN_OP = "lion"
STANDARD_SCAN_OP = "onnx"
SCAN_OPS = (DEFAULT_SCAN_OP, STANDARD_SCAN_OP)
SCAN_OP_KEY = "scan_op"
#: the standard op the "onnx" choice writes, and the first standard opset that defines it
LINEAR_ATTENTION = "LinearAttention"
LINEAR_ATTENTION_OPSET = 27
#: LinearAttention's input slot for the log-space decay (query, key, value, past_state, decay, beta)
LINEAR_ATTENTION_DECAY_INPUT = 4


def node_attributes(normalize: bool, eps: float) -> dict[str, int | float | str]:
    """Every attribute, always written on the node (TensorRT's parser only warns about a missing one)."""
    return {NORMALIZE: int(bool(normalize)), EPS: float(eps), PLUGIN_NAMESPACE_ATTRIBUTE: PLUGIN_NAMESPACE}


def is_scan_op(domain: str, op_type: str) -> bool:
    """True for a `lion.SelectiveScan` node or function."""
    return (domain, op_type) == (DOMAIN, OP_TYPE)


def is_linear_attention(domain: str, op_type: str) -> bool:
    """True for a standard-domain LinearAttention node."""
    return domain in ("", "ai.onnx") and op_type == LINEAR_ATTENTION


__all__ = ["DOMAIN", "OP_TYPE", "DOMAIN_VERSION", "PLUGIN_NAMESPACE", "PLUGIN_VERSION", "PLUGIN_ID", "INPUTS",
           "LOG_DECAY_INPUT", "OUTPUTS", "NORMALIZE", "EPS", "DEFAULT_NORMALIZE", "DEFAULT_EPS",
           "PLUGIN_NAMESPACE_ATTRIBUTE", "SCAN_OPS", "DEFAULT_SCAN_OP", "STANDARD_SCAN_OP", "SCAN_OP_KEY",
           "LINEAR_ATTENTION", "LINEAR_ATTENTION_OPSET", "LINEAR_ATTENTION_DECAY_INPUT", "node_attributes",
           "is_scan_op", "is_linear_attention"]
