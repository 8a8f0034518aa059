"""The ONNX file as the engine builder sees it: a lion-export graph, checked before TensorRT ever reads it.

TensorRT's parser answers a foreign or damaged file with a log of C++ errors (or, for a malformed custom node bound
to a plugin, by aborting the process), so `build` checks here first: the file is a readable ONNX model, it carries
lion-export's metadata (profiles are read from it), and every `lion.SelectiveScan` node has the inputs, outputs and
attributes the plugin and the local function take. It counts standard LinearAttention nodes too (`--scan-op onnx`),
which TensorRT-RTX cannot build. It also makes the graph that `--no-plugin` parses: the same file
without the `plugin_namespace` attribute, so the parser inlines the local function even in a process where the
plugin is registered (the parser binds a custom node to a plugin only when the node names a plugin namespace).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..build_record import INT8
from ..scan_op import (DOMAIN, EPS, INPUTS, NORMALIZE, OP_TYPE, OUTPUTS, PLUGIN_NAMESPACE_ATTRIBUTE,
                       is_linear_attention, is_scan_op)


class GraphFileError(ValueError):
    """Not an ONNX file `build` can turn into an engine."""


@dataclass
class LionGraph:
    """A checked lion-export ONNX file (loaded without external data)."""

    path: Path
    model: object            # onnx.ModelProto
    metadata: dict

    @property
    def form(self) -> str:
        from ..graph_summary import FORM_KEY

        return str(self.metadata.get(FORM_KEY, "?"))

    @property
    def dtype(self) -> str:
        """"int8" for a QDQ file (`lion-export quantize`: its Q/DQ nodes set the precision of the layers they
        wrap; the metadata keeps the dtype it was exported in), else the exported dtype."""
        if any(node.op_type == "QuantizeLinear" for node in self.model.graph.node):
            return INT8
        return str(self.metadata.get("dtype", "fp32"))

    @property
    def scan_nodes(self) -> int:
        """lion.SelectiveScan nodes: one per mixer in a recurrent export, none otherwise."""
        return sum(1 for n in self.model.graph.node if is_scan_op(n.domain, n.op_type))

    @property
    def linear_attention_nodes(self) -> int:
        """Standard LinearAttention nodes: two per LION pass in a recurrent export with scan op "onnx"."""
        return sum(1 for n in self.model.graph.node if is_linear_attention(n.domain, n.op_type))

    def without_plugin_binding(self) -> bytes:
        """The serialized model with `plugin_namespace` dropped from the custom nodes and their local function."""
        import onnx

        model = onnx.ModelProto()
        model.CopyFrom(self.model)
        for node in model.graph.node:
            if node.domain == DOMAIN:
                kept = [a for a in node.attribute if a.name != PLUGIN_NAMESPACE_ATTRIBUTE]
                del node.attribute[:]
                node.attribute.extend(kept)
        for function in model.functions:
            if function.domain == DOMAIN:
                kept = [a for a in function.attribute_proto if a.name != PLUGIN_NAMESPACE_ATTRIBUTE]
                del function.attribute_proto[:]
                function.attribute_proto.extend(kept)
        return model.SerializeToString()


def _check_scan_nodes(model, path: Path) -> None:
    functions = {(f.domain, f.name) for f in model.functions}
    for node in model.graph.node:
        if node.domain != DOMAIN:
            continue
        label = f"{path}: node {node.name or '(unnamed)'!r} ({node.domain}.{node.op_type})"
        if node.op_type != OP_TYPE:
            raise GraphFileError(f"{label}: unknown lion op; lion-export graphs hold only {DOMAIN}.{OP_TYPE}")
        if len(node.input) != len(INPUTS) or not all(node.input):
            raise GraphFileError(f"{label} has {len([i for i in node.input if i])} inputs; {OP_TYPE} takes "
                                 f"{len(INPUTS)} ({', '.join(INPUTS)})")
        if len(node.output) != len(OUTPUTS):
            raise GraphFileError(f"{label} has {len(node.output)} outputs; {OP_TYPE} has {len(OUTPUTS)}")
        missing = {NORMALIZE, EPS} - {a.name for a in node.attribute}
        if missing:
            raise GraphFileError(f"{label} lacks the attribute(s) {sorted(missing)}")
        if (DOMAIN, OP_TYPE) not in functions:
            raise GraphFileError(f"{path}: {DOMAIN}.{OP_TYPE} nodes but no local function defining them "
                                 "(re-export with lion-export)")


def load_lion_graph(path: str | Path) -> LionGraph:
    """Read and check `path`; GraphFileError (one line) for anything `build` cannot use."""
    from ..graph_summary import load_onnx_model, metadata

    path = Path(path)
    try:
        model = load_onnx_model(path)
    except ValueError as exc:
        raise GraphFileError(str(exc)) from None
    meta = metadata(model)
    config = meta.get("model_config")
    if "lion_export_version" not in meta or not isinstance(config, dict) or config.get("model") not in ("text",
                                                                                                     "vision"):
        raise GraphFileError(f"{path}: not a lion-export ONNX file (no lion_export metadata); export it with "
                             "`lion-export MODEL.pt`, or build a foreign graph with trtexec")
    _check_scan_nodes(model, path)
    return LionGraph(path=path, model=model, metadata=meta)


__all__ = ["GraphFileError", "LionGraph", "load_lion_graph"]
