"""export_onnx: a LION model -> one checked .onnx file in the parallel, chunked or recurrent form.

Pipeline: copy the model (the caller's is never modified), cast it to the export dtype and switch its mixers
to the form -> trace with torch.onnx.export (dynamo) at opset 18 on example inputs, with dynamic batch /
sequence axes, each distinct block once, its optimised nodes then repeated for every block with that block's
weights (block_stack.py: the exporter's cost would otherwise grow with the depth) -> convert to the target opset -> post-process (the `lion.SelectiveScan` function for the
recurrent form, readable output axis names, metadata) -> onnx.checker with full_check (strict shape
inference) -> rename into place. All of it happens in a temp directory beside the target, with the weights in
an external file until the end, so a failure leaves nothing and a > 2 GiB model never meets protobuf's limit.

Forms in the graph: "chunked" and "parallel" are the torch forms traced as they are: standard ops only, the
chunk count derived from the dynamic L (lion_export/forms/chunked.py is loop-free for that). "recurrent" routes
every LION pass to one `lion.SelectiveScan` node (one per mixer, two per natural-order mixer, the token
permutations of its two walks as Gather nodes around them) backed by a model-local function (selective_scan.py);
with scan_op="onnx" each such node is then rewritten as two standard LinearAttention nodes (opset >= 27,
linear_attention.py), and the file holds no custom op.
In fp16 the whole model is fp16 except inside the LION mixers, which compute in fp32 (explicit Casts), so the
decay prefix sums and their exponentials never run in fp16.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import onnx
import onnx.external_data_helper
import onnx.version_converter
import torch
from torch import nn

from ..checkpoints import checkpoint_sha256
from ..dtypes import GRAPH_DTYPES, torch_dtype
from ..forms import FORMS
from ..models import LionAttention, set_form
from ..scan_op import (DEFAULT_SCAN_OP, DOMAIN, LINEAR_ATTENTION, LINEAR_ATTENTION_OPSET, OP_TYPE, SCAN_OPS,
                       STANDARD_SCAN_OP)
from .metadata import export_metadata, set_metadata
from .opsets import MIN_OPSET, resolve_opset
from .block_stack import traced_with_repeated_blocks
from .linear_attention import GATED, LINEAR, replace_selective_scans
from .selective_scan import attach_selective_scan_function, route_recurrent_to_selective_scan
from .signature import GraphSignature, graph_signature

# protobuf cannot serialise a message of 2 GiB or more; beyond this the weights go to one external data file
PROTOBUF_LIMIT_BYTES = 2**31 - 64 * 2**20
_TRACED = "traced.onnx"

# torch.onnx's op library is written at this opset; the graph is traced there and then converted
TRACE_OPSET = MIN_OPSET

Progress = Callable[[str], None]


class ExportError(ValueError):
    """An export that cannot be done as asked; the message is one line and says what to change."""


def _check_request(form: str, chunk_size: int, dtype: str, scan_op: str) -> None:
    if form not in FORMS:
        raise ExportError(f"unknown form {form!r}; valid: {', '.join(FORMS)}")
    if scan_op not in SCAN_OPS:
        raise ExportError(f"unknown scan op {scan_op!r}; valid: {', '.join(SCAN_OPS)}")
    if scan_op != DEFAULT_SCAN_OP and form != "recurrent":
        raise ExportError(f"scan op {scan_op!r} writes the recurrent form; the {form} form has no scan op "
                          "(export the recurrent form, or drop the scan op)")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size <= 0:
        raise ExportError(f"chunk size must be a positive integer, got {chunk_size!r}")
    if dtype not in GRAPH_DTYPES:
        raise ExportError(f"unknown dtype {dtype!r}; valid: {', '.join(GRAPH_DTYPES)}")


def _check_scan_op_opset(scan_op: str, opset: int) -> None:
    if scan_op == STANDARD_SCAN_OP and opset < LINEAR_ATTENTION_OPSET:
        raise ExportError(f"scan op {scan_op!r} writes the standard {LINEAR_ATTENTION} op, which opset "
                          f"{LINEAR_ATTENTION_OPSET} introduced: use opset {LINEAR_ATTENTION_OPSET} or newer "
                          f"(got {opset}), or scan op {DEFAULT_SCAN_OP!r}")


def _check_target(path: Path) -> None:
    """Fail before the (long) trace if the file could not be written anyway."""
    if path.is_dir():
        raise ExportError(f"output path {path} is a directory; give a file name such as {path / 'model.onnx'}")
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)    # as `--report new/dir/r.json` does: create what is missing
    except OSError as error:
        raise ExportError(f"cannot create the output directory {parent}: {error.strerror or error}") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ExportError(f"output directory {parent} is not writable")


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """torch.onnx logs and warns about things that concern its own internals (missing torchvision ops,
    deprecations, the version converter's fallback); a user of the command cannot act on any of them."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _prepare(model: nn.Module, form: str, chunk_size: int, dtype: str) -> nn.Module:
    work = copy.deepcopy(model).eval().to(torch_dtype(dtype))
    return set_form(work, form, chunk_size)


def _trace(model: nn.Module, signature: GraphSignature, form: str, staging: Path,
           report: Progress) -> onnx.ModelProto:
    """Trace at TRACE_OPSET and return the graph, its weights left in an external data file in `staging`.

    Each distinct block is traced once and repeated in the graph (block_stack.py): the exporter's cost would
    otherwise grow with the depth. The weights never enter a ModelProto here: protobuf cannot hold a message of
    2 GiB or more, so large models would fail anywhere a proto is serialised (the opset converter, the checker).
    """
    def export(module: nn.Module) -> torch.onnx.ONNXProgram:
        return torch.onnx.export(module, signature.example_inputs, dynamo=True,
                                 input_names=list(signature.input_names),
                                 output_names=list(signature.output_names),
                                 dynamic_shapes=signature.dynamic_shapes, opset_version=TRACE_OPSET,
                                 optimize=False, verbose=False, report=False)

    with contextlib.ExitStack() as stack:
        stack.enter_context(_quiet_exporter())
        stack.enter_context(torch.no_grad())
        if form == "recurrent":
            stack.enter_context(route_recurrent_to_selective_scan())
        program = traced_with_repeated_blocks(model, export, report)
        program.save(staging / _TRACED, external_data=True)
    return onnx.load(staging / _TRACED, load_external_data=False)


def _convert_opset(proto: onnx.ModelProto, opset: int) -> onnx.ModelProto:
    """onnx's version converter, not torch's: torch's leaves ops it cannot convert (e.g. Gelu at 20) under an
    opset-18 import and carries on; onnx's converts every node or raises. Weights stay external (untouched)."""
    if opset == TRACE_OPSET:
        return proto
    try:
        return onnx.version_converter.convert_version(proto, opset)
    except (RuntimeError, onnx.checker.ValidationError) as error:
        raise ExportError(f"cannot convert the graph from opset {TRACE_OPSET} to {opset}: "
                          f"{str(error).strip().splitlines()[-1]}") from None


def _pass_count(model: nn.Module) -> int:
    """LION passes in the model: one per mixer, two per natural-order mixer (one scan per walk)."""
    return sum(m.passes for m in model.modules() if isinstance(m, LionAttention))


def _name_output_axes(proto: onnx.ModelProto, signature: GraphSignature) -> None:
    for value, dims in zip(proto.graph.output, signature.output_dims, strict=True):
        shape = value.type.tensor_type.shape
        shape.ClearField("dim")
        for dim in dims:
            entry = shape.dim.add()
            if isinstance(dim, str):
                entry.dim_param = dim
            else:
                entry.dim_value = dim


def _to_linear_attention(proto: onnx.ModelProto, model: nn.Module) -> None:
    """Rewrite the lion.SelectiveScan nodes as LinearAttention nodes: the head count and the update rule (no
    decay: "linear") are the mixers', which one model config makes the same for every mixer."""
    mixers = [m for m in model.modules() if isinstance(m, LionAttention)]
    heads = {m.num_heads for m in mixers}
    if len(heads) != 1:
        raise ExportError(f"scan op {STANDARD_SCAN_OP!r} needs one head count for every mixer, got {sorted(heads)}")
    rule = LINEAR if all(m.variant.decay == "none" for m in mixers) else GATED
    replace_selective_scans(proto, heads.pop(), rule)


def _finish_graph(proto: onnx.ModelProto, model: nn.Module, signature: GraphSignature, form: str,
                  scan_op: str) -> None:
    if form == "recurrent":
        scans = [node for node in proto.graph.node if node.op_type == OP_TYPE and node.domain == DOMAIN]
        passes = _pass_count(model)
        if len(scans) != passes:
            raise ExportError(f"recurrent export produced {len(scans)} {DOMAIN}.{OP_TYPE} nodes for {passes} LION "
                              "passes; every pass (one per mixer, two per natural-order mixer) must become exactly "
                              "one node")
        for index, node in enumerate(scans):                      # names TensorRT's layer list will show
            node.name = f"{OP_TYPE}_{index}"
        if scan_op == STANDARD_SCAN_OP:
            _to_linear_attention(proto, model)
        else:
            attach_selective_scan_function(proto)
    _name_output_axes(proto, signature)


def _external_files(proto: onnx.ModelProto) -> set[str]:
    return {entry.value for tensor in proto.graph.initializer
            if tensor.data_location == onnx.TensorProto.EXTERNAL
            for entry in tensor.external_data if entry.key == "location"}


def _write_checked(proto: onnx.ModelProto, staging: Path, path: Path) -> None:
    """Write the final file(s) in `staging`, run the full checker on them there, then rename into place.

    Weights are inlined into the one .onnx file unless they exceed protobuf's limit; then they stay in one
    external data file, `<name>.onnx.data`. Nothing appears under a final name until the check has passed.
    """
    traced_files = _external_files(proto)
    data_bytes = sum((staging / name).stat().st_size for name in traced_files)
    data_name = f"{path.name}.data"
    external = data_bytes > PROTOBUF_LIMIT_BYTES
    if external:
        (traced,) = traced_files                          # torch writes all weights into one file
        os.replace(staging / traced, staging / data_name)
        for tensor in proto.graph.initializer:
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = data_name
    else:
        onnx.external_data_helper.load_external_data_for_model(proto, str(staging))
    staged = staging / path.name
    onnx.save_model(proto, staged)
    try:
        onnx.checker.check_model(str(staged), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ExportError(f"the exported graph fails onnx.checker (full check): {first}") from error
    if external:
        os.replace(staging / data_name, path.parent / data_name)
    os.replace(staged, path)


def export_onnx(model: nn.Module, path: str | os.PathLike, *, form: str = "chunked", chunk_size: int = 64,
                dtype: str = "fp32", opset: int | None = None, static: bool = False, batch: int = 2,
                seq_len: int | None = None, checkpoint_path: str | os.PathLike | None = None,
                progress: Progress | None = None, scan_op: str = DEFAULT_SCAN_OP) -> Path:
    """Export a LION model (from create_model / load_checkpoint) to one .onnx file at `path`; returns the path.

    form: "chunked" (standard ops), "recurrent" (lion.SelectiveScan nodes + their local function) or "parallel".
    scan_op: how the recurrent form writes each LION pass: "lion" (the lion.SelectiveScan node) or "onnx" (two
    standard LinearAttention nodes; needs opset >= 27). Only "lion", the default, goes with the other forms.
    dtype: "fp32" or "fp16" (graph inputs/outputs fp16; LION mixers compute in fp32 inside).
    opset: standard-domain opset, default DEFAULT_OPSET (see opsets.py). static: fix batch / sequence axes to
    the example's; otherwise they are dynamic. batch, seq_len: the example traced (text models; a vision
    model's length is fixed by its image size). checkpoint_path: recorded by sha256 in the metadata.
    progress: called with a short description at the start of each step.
    Bad requests raise ExportError / ValueError before anything is written; a failure never leaves a file.
    """
    _check_request(form, chunk_size, dtype, scan_op)
    opset = resolve_opset(opset)
    _check_scan_op_opset(scan_op, opset)
    path = Path(path)
    _check_target(path)
    report = progress or (lambda _step: None)
    sha256 = None if checkpoint_path is None else checkpoint_sha256(checkpoint_path)

    # bad input (batch / seq_len, an unwritable target) is found before the first progress report, so that it
    # prints one line: the signature validates the example's sizes
    signature = graph_signature(model, batch=batch, seq_len=seq_len, dtype=torch_dtype(dtype), static=static)
    # everything is written in a temp directory beside `path` (same file system: the final renames are atomic)
    try:
        staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    except OSError as error:        # e.g. /proc, a read-only mount that os.access does not see as such
        raise ExportError(f"cannot write {path}: {error.strerror or error}") from None
    try:
        report(f"preparing the {form} form ({dtype})")
        work = _prepare(model, form, chunk_size, dtype)
        proto = _trace(work, signature, form, staging, report)
        report(f"converting to opset {opset}" if opset != TRACE_OPSET else "finishing the graph")
        proto = _convert_opset(proto, opset)
        _finish_graph(proto, work, signature, form, scan_op)
        set_metadata(proto, export_metadata(work, form=form, chunk_size=chunk_size, dtype=dtype, opset=opset,
                                            batch=batch, seq_len=signature.seq_len, checkpoint_sha256=sha256,
                                            scan_op=scan_op))
        report(f"checking and writing {path.name}")
        _write_checked(proto, staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


__all__ = ["ExportError", "export_onnx", "PROTOBUF_LIMIT_BYTES"]
