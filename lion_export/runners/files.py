"""The runner of a file (for `verify`, `bench` and `lion_export.load`): one small factory keyed by the file's kind
(lion_export.artefacts).

A checkpoint is a model, run by the eager runner (`eager.py`); an .onnx file runs in onnxruntime; a TensorRT
engine runs in `lion_export.runners.trt_engine.TensorRTRunner`, imported only when an engine is given (TensorRT support
is optional and needs a GPU: without it the error is one line); a served model's URL (triton://...) runs on its
server through `triton_client.TritonClientRunner`.
"""
from __future__ import annotations

from pathlib import Path

from ..artefacts import SERVED, artefact_kind
from .base import Runner


class ArtefactError(ValueError):
    """A path of a kind verify cannot compare, or a runner this installation cannot provide."""


def engine_runner(path: str | Path) -> Runner:
    """TensorRTRunner(path), or ArtefactError when lion_export's TensorRT support cannot be imported here."""
    try:
        from .trt_engine import TensorRTRunner
    except ImportError as exc:
        raise ArtefactError(f"{path} is a TensorRT engine, but lion_export.runners.trt_engine.TensorRTRunner cannot "
                            f"be imported here ({' '.join(str(exc).split())})") from None
    return TensorRTRunner(path)


def file_runner(path: str | Path, *, providers: tuple[str, ...] = ("CPUExecutionProvider",),
                optimization: str = "all") -> Runner:
    """The runner of an .onnx file (onnxruntime with `providers`), an engine file (TensorRT) or a served model."""
    from .onnx_runtime import OnnxRuntimeRunner

    kind = artefact_kind(path)
    if kind == SERVED:
        from .triton_client import TritonClientRunner

        return TritonClientRunner(str(path))
    if kind == "onnx":
        return OnnxRuntimeRunner(path, optimization=optimization, providers=providers)
    if kind == "engine":
        return engine_runner(path)
    raise ArtefactError(f"{path} is a checkpoint, not a file a runner executes")


__all__ = ["ArtefactError", "engine_runner", "file_runner"]
