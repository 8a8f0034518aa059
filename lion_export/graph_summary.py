"""`lion-export inspect`: what an .onnx file holds, read without running it.

Metadata (the exporter's metadata_props), opsets, an op histogram (nodes inside control-flow subgraphs and
model-local functions counted too, labelled by domain), the dynamic axes of inputs and outputs, custom-domain
nodes and the local functions that define them. It also owns `load_onnx_model`, the one place that turns "this
path is not a readable ONNX model" into a clear error for every command that reads .onnx files.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

STANDARD_DOMAINS = ("", "ai.onnx", "ai.onnx.ml")
#: the metadata key that records an export's form: files say "mode", as the CLI's --mode does (the code says "form")
FORM_KEY = "mode"


class OnnxFileError(ValueError):
    """The path is missing, unreadable, or not an ONNX model."""


def load_onnx_model(path: str | Path, *, load_external_data: bool = False):
    """onnx.load with one clear error for a missing path, a non-ONNX file, or a file with no graph."""
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    if not path.is_file():
        raise OnnxFileError(f"ONNX file {str(path)!r} does not exist")
    try:
        model = onnx.load(str(path), load_external_data=load_external_data)
    except (DecodeError, OSError, ValueError, RuntimeError) as exc:
        raise OnnxFileError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    if not model.graph.node or not model.graph.output or not model.opset_import:
        raise OnnxFileError(f"{path}: not an ONNX model (no graph, outputs or opset)")
    return model


def _decode(value: str):
    """metadata_props values are strings; JSON-looking ones (configs, numbers) are shown decoded."""
    try:
        return json.loads(value)
    except ValueError:
        return value


def metadata(model) -> dict:
    """The model's metadata_props as a dict, JSON values decoded."""
    return {p.key: _decode(p.value) for p in model.metadata_props}


def _subgraphs(node):
    import onnx

    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            yield attr.g
        elif attr.type == onnx.AttributeProto.GRAPHS:
            yield from attr.graphs


def _walk(nodes):
    """Every node, descending into Loop / Scan / If bodies."""
    for node in nodes:
        yield node
        for graph in _subgraphs(node):
            yield from _walk(graph.node)


def _op_name(node) -> str:
    return node.op_type if node.domain in STANDARD_DOMAINS else f"{node.domain}.{node.op_type}"


def _dims(value) -> list:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in value.type.tensor_type.shape.dim]


@dataclass
class OnnxSummary:
    """What `inspect` reports; `to_dict()` is the --json output."""

    path: str
    size_bytes: int
    ir_version: int
    producer: str
    opsets: dict[str, int]
    metadata: dict
    inputs: dict[str, dict]
    outputs: dict[str, dict]
    dynamic_axes: dict[str, dict[int, str]]
    op_histogram: dict[str, int]
    function_op_histogram: dict[str, int]
    custom_nodes: dict[str, int]
    local_functions: list[dict] = field(default_factory=list)
    parameters: int = 0

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def summarize(path: str | Path) -> OnnxSummary:
    """Read `path` (without its external data) and summarise it."""
    import numpy as np
    from onnx.helper import tensor_dtype_to_np_dtype

    model = load_onnx_model(path)
    graph = model.graph
    initialisers = {i.name for i in graph.initializer}

    def value_type(value) -> str:
        """A tensor's element type; other value kinds (sequence, map, optional) by their kind's name."""
        kind = value.type.WhichOneof("value")
        if kind != "tensor_type":
            return str(kind).removesuffix("_type")
        return np.dtype(tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)).name

    def signature(values) -> dict[str, dict]:
        return {v.name: {"dtype": value_type(v), "shape": _dims(v)} for v in values if v.name not in initialisers}

    inputs, outputs = signature(graph.input), signature(graph.output)
    dynamic = {name: {axis: d for axis, d in enumerate(sig["shape"]) if isinstance(d, str)}
               for name, sig in {**inputs, **outputs}.items()}
    graph_ops = Counter(_op_name(n) for n in _walk(graph.node))
    function_ops = Counter(_op_name(n) for f in model.functions for n in _walk(f.node))
    custom = Counter(_op_name(n) for n in _walk(graph.node) if n.domain not in STANDARD_DOMAINS)
    functions = [{"name": f"{f.domain}.{f.name}", "inputs": list(f.input), "outputs": list(f.output),
                  "attributes": list(f.attribute) + [a.name for a in f.attribute_proto],
                  "nodes": sum(1 for _ in _walk(f.node))} for f in model.functions]
    parameters = sum(int(np.prod(i.dims)) for i in graph.initializer)
    return OnnxSummary(
        path=str(path), size_bytes=Path(path).stat().st_size, ir_version=model.ir_version,
        producer=f"{model.producer_name} {model.producer_version}".strip(),
        opsets={(o.domain or "ai.onnx"): o.version for o in model.opset_import},
        metadata=metadata(model), inputs=inputs, outputs=outputs,
        dynamic_axes={k: v for k, v in dynamic.items() if v},
        op_histogram=dict(graph_ops.most_common()), function_op_histogram=dict(function_ops.most_common()),
        custom_nodes=dict(custom.most_common()), local_functions=functions, parameters=parameters)


def print_summary(summary: OnnxSummary, console=None) -> None:
    """Human-readable summary: rich tables on a terminal, plain text at full width otherwise."""
    from rich.markup import escape

    from .console_output import output_console, print_table

    console = console or output_console()
    console.print(f"[bold]{escape(summary.path)}[/]  {summary.size_bytes / 2**20:.2f} MiB, "
                  f"{summary.parameters:,} parameters, IR {summary.ir_version}, "
                  f"producer {escape(summary.producer or 'unknown')}")
    console.print("opsets: " + ", ".join(f"{d} {v}" for d, v in summary.opsets.items()))
    if summary.metadata:
        print_table(console, ("key", "value"), [(key, value if isinstance(value, str) else json.dumps(value))
                                                for key, value in summary.metadata.items()], title="metadata")
    print_table(console, ("", "name", "dtype", "shape"),
                [(kind, name, sig["dtype"], "[" + ", ".join(map(str, sig["shape"])) + "]")
                 for kind, values in (("in", summary.inputs), ("out", summary.outputs))
                 for name, sig in values.items()], title="inputs / outputs (dynamic axes by name)")
    ops = sorted(set(summary.op_histogram) | set(summary.function_op_histogram),
                 key=lambda o: -(summary.op_histogram.get(o, 0) + summary.function_op_histogram.get(o, 0)))
    print_table(console, ("op", "graph", "in local functions"),
                [(op, str(summary.op_histogram.get(op, 0)), str(summary.function_op_histogram.get(op, 0)))
                 for op in ops], title="op histogram")
    if summary.custom_nodes:
        console.print("custom nodes: " + escape(", ".join(f"{op} x{n}" for op, n in summary.custom_nodes.items())))
    else:
        console.print("custom nodes: none (standard ONNX ops only)")
    for fn in summary.local_functions:
        signature = f"{fn['name']}({', '.join(fn['inputs'])}) -> {', '.join(fn['outputs'])}"
        console.print(escape(f"local function {signature}  attributes {fn['attributes']}, {fn['nodes']} nodes"))


__all__ = ["FORM_KEY", "OnnxFileError", "OnnxSummary", "STANDARD_DOMAINS", "load_onnx_model", "metadata", "summarize",
           "print_summary"]
