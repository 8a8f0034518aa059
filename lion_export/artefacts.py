"""The kinds of file the commands take, by suffix, in one table: checkpoints, ONNX graphs and TensorRT engines.

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

KINDS = {**dict.fromkeys(CHECKPOINT_SUFFIXES, "checkpoint"), ONNX_SUFFIX: "onnx",
         **dict.fromkeys(ENGINE_SUFFIXES, "engine")}


def artefact_kind(path: str | Path) -> str:
    """"onnx" or "engine" by the file's suffix (any case); anything else is taken for a checkpoint, and loading it
    says clearly when it is not one."""
    return KINDS.get(Path(path).suffix.lower(), "checkpoint")


__all__ = ["CHECKPOINT_SUFFIXES", "ONNX_SUFFIX", "ENGINE_SUFFIXES", "ENGINE_SUFFIX", "KINDS", "artefact_kind"]
