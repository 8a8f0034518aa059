"""What a model folder declares about an artefact: its inputs and outputs (names, dtypes, dims), the largest batch
it takes, the opset an .onnx file is stamped with, and whether an engine needs the Python plugin at run time.

Each kind of artefact is read where it says these things: an .onnx file's graph (runners.feeds), an engine's
build report (written beside it by `lion-export build`: the profiles bound each input, the plugin line says how
the scan was built) and the graph it was built from (names and dtypes, which the engine header does not hold), a
checkpoint's `lion_export.load` session. Nothing is guessed: an engine without its build report is refused.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..artefacts import artefact_kind
from ..runners.feeds import InputSpec


@dataclass(frozen=True)
class ArtefactSignature:
    """inputs / outputs: dims as ints (static) or None (dynamic); max_batch: an engine profile's bound (None:
    unbounded); opset: the .onnx file's standard opset (None for other kinds); plugin: an engine's scan build
    (None for other kinds); edition: the TensorRT that built an engine."""

    path: Path
    kind: str
    inputs: tuple[InputSpec, ...]
    outputs: tuple[InputSpec, ...]
    max_batch: int | None = None
    opset: int | None = None
    plugin: str | None = None
    edition: str | None = None

    @property
    def batch_axis(self) -> bool:
        """Whether every input and output has a dynamic first axis: the batch Triton may split and join."""
        return all(spec.shape and not isinstance(spec.shape[0], int) for spec in (*self.inputs, *self.outputs))

    @property
    def needs_python_plugin(self) -> bool:
        """An engine that binds the class-based lion::SelectiveScan plugin, registered from Python at run time."""
        from ..engine.build import PLUGIN_LABEL

        return self.plugin == PLUGIN_LABEL


def _dynamic(spec: InputSpec) -> InputSpec:
    """Dynamic axes as None (Triton's -1), whatever name the graph gave them."""
    return InputSpec(spec.name, spec.dtype, tuple(d if isinstance(d, int) else None for d in spec.shape))


def _onnx_signature(path: Path) -> ArtefactSignature:
    from ..graph_summary import load_onnx_model
    from ..runners.feeds import graph_input_specs, graph_output_specs
    from .opsets import file_opset

    model = load_onnx_model(path)
    return ArtefactSignature(path, "onnx", tuple(map(_dynamic, graph_input_specs(model))),
                             tuple(map(_dynamic, graph_output_specs(model))), opset=file_opset(model))


def _engine_graph(path: Path, report: dict) -> Path:
    """The .onnx file the engine was built from: as the report names it, else by that name beside the engine."""
    from ..build_record import source_candidates

    named = report.get("onnx", "")
    for candidate in source_candidates(path, report):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{path}: its build report names the graph {named}, which is not there (nor beside the "
                            "engine); the graph gives the input and output names and dtypes")


def _engine_signature(path: Path) -> ArtefactSignature:
    from ..build_record import build_record_path, read_build_record
    from ..engine.header import read_engine_header

    header = read_engine_header(path)
    report = read_build_record(path)
    if report is None:
        raise ValueError(f"{path}: no build report beside it ({build_record_path(path).name}, written by "
                         "`lion-export build`), so its inputs' ranges and whether it needs the Python plugin are "
                         "unknown; rebuild it with lion-export build")
    graph = _onnx_signature(_engine_graph(path, report))
    profiles = report.get("profiles", {})
    inputs = []
    for spec in graph.inputs:
        profile = profiles.get(spec.name)
        if profile is None:
            raise ValueError(f"{path}: its build report has no profile for input {spec.name!r}")
        inputs.append(InputSpec(spec.name, spec.dtype, tuple(
            low if low == high else None for low, high in zip(profile["min"], profile["max"]))))
    max_batch = min((p["max"][0] for p in profiles.values()), default=None)
    return ArtefactSignature(path, "engine", tuple(inputs), graph.outputs, max_batch=max_batch,
                             plugin=report.get("plugin"), edition=header.edition)


def _checkpoint_signature(path: Path) -> ArtefactSignature:
    from ..runners.session import load

    with load(path) as session:
        inputs = tuple(_dynamic(info.spec()) for info in session.inputs)
        outputs = tuple(_dynamic(info.spec()) for info in session.outputs)
    return ArtefactSignature(path, "checkpoint", inputs, outputs)


def artefact_signature(path: str | Path) -> ArtefactSignature:
    """The signature of a checkpoint, an .onnx file or an engine, by its kind."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    read = {"onnx": _onnx_signature, "engine": _engine_signature}.get(artefact_kind(path), _checkpoint_signature)
    return read(path)


__all__ = ["ArtefactSignature", "artefact_signature"]
