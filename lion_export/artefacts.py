"""The kinds of file the commands take, by suffix, in one table: checkpoints, ONNX graphs and TensorRT engines;
and the one kind that is not a file, a model served by a Triton Inference Server, by its URL's scheme.

`verify` picks its runner from it, `inspect` its reader, `build` and `export --engine` the default engine name,
so a suffix cannot mean an engine to one command and a checkpoint to another.
"""
from __future__ import annotations

from pathlib import Path

#: checkpoints as they commonly come; any suffix not listed below is taken for a checkpoint too (.bin, .ckpt, ...)
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".safetensors")
ONNX_SUFFIX = ".onnx"
#: serialized TensorRT engines; the first is the name `build` gives one by default
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
ENGINE_SUFFIX = ENGINE_SUFFIXES[0]

#: a served model: triton://HOST:PORT/MODEL (HTTP) or triton+grpc://HOST:PORT/MODEL (gRPC), then /VERSION optionally
SERVED_SCHEMES = ("triton", "triton+grpc")
SERVED = "served"

KINDS = {**dict.fromkeys(CHECKPOINT_SUFFIXES, "checkpoint"), ONNX_SUFFIX: "onnx",
         **dict.fromkeys(ENGINE_SUFFIXES, "engine")}


def is_served(path: str | Path) -> bool:
    """Whether `path` is a served model's URL (a string: a Path would have folded its `//`)."""
    return isinstance(path, str) and path.partition("://")[0] in SERVED_SCHEMES and "://" in path


def artefact_kind(path: str | Path) -> str:
    """"served" for a Triton URL; "onnx" or "engine" by the file's suffix (any case); anything else is taken for a
    checkpoint, and loading it says clearly when it is not one."""
    if is_served(path):
        return SERVED
    return KINDS.get(Path(path).suffix.lower(), "checkpoint")


__all__ = ["CHECKPOINT_SUFFIXES", "ONNX_SUFFIX", "ENGINE_SUFFIXES", "ENGINE_SUFFIX", "KINDS", "SERVED", "SERVED_SCHEMES",
           "artefact_kind", "is_served"]
