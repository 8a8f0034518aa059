"""Reading checkpoint files without surprises: what every reader of a checkpoint (ours or a public one) shares.

Why so strict: a pickled nn.Module runs arbitrary code when unpickled, so torch files are read with
weights_only=True unless the caller opts in. Every way a file can be wrong (missing, a directory, empty, truncated,
corrupt, mismatched tensors) ends in exactly one `CheckpointError` with a one-line message naming the file, never a
traceback from deep inside torch.
"""
from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lion_export.models.config import ModelConfig
from lion_export.models.presets import model_from_config

SAFETENSORS_SUFFIX = ".safetensors"
# training scripts (DeiT, the public LION code) store their argparse options next to the weights; a Namespace
# is a plain attribute bag, safe to rebuild, so state_dict files carrying one load without allow_pickle
_HARMLESS_GLOBALS = [argparse.Namespace]


class CheckpointError(ValueError):
    """A checkpoint file cannot be used; the message is one line and names the file."""


def one_line(text: object, limit: int = 160) -> str:
    """`text` on one line, cut to `limit` characters: error messages quote foreign text this way."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def existing_file(path: Path, allow_empty: bool = False) -> Path:
    """`path`, or a CheckpointError when it is missing, a directory or (unless allow_empty) empty."""
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, expected a checkpoint file (.pt or .safetensors)")
    if not allow_empty and path.stat().st_size == 0:
        raise CheckpointError(f"{path}: file is empty (0 bytes)")
    return path


def torch_load(path: Path, allow_pickle: bool) -> Any:
    """torch.load without code execution unless allow_pickle; every failure -> one CheckpointError."""
    try:
        with torch.serialization.safe_globals(_HARMLESS_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as safe_error:                                          # noqa: BLE001 - reclassified below
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:                                                    # noqa: BLE001 - not a torch file
            unsafe = []
        if not unsafe:
            raise CheckpointError(f"{path}: not a readable torch checkpoint (corrupt, truncated or another "
                                  f"format; torch.load raised {type(safe_error).__name__})") from None
        if not allow_pickle:
            raise CheckpointError(
                f"{path}: holds pickled Python objects ({', '.join(unsafe[:2])}, ...), e.g. a whole "
                "nn.Module; unpickling runs code: pass allow_pickle=True (CLI: --allow-pickle) only if you trust "
                "the file") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:                                               # noqa: BLE001
        raise CheckpointError(f"{path}: cannot unpickle: {one_line(error, 100)}") from None


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a .safetensors file, on the CPU; a CheckpointError when it cannot be read."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as error:                                               # noqa: BLE001 - SafetensorError & co
        raise CheckpointError(f"{path}: not a readable safetensors file (corrupt or truncated?): "
                              f"{one_line(error, 100)}") from None


def is_state_dict(obj: object) -> bool:
    """True for a non-empty mapping of tensors."""
    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def load_tensors(path: Path, model: nn.Module, tensors: Mapping[str, torch.Tensor]) -> nn.Module:
    """`model` with `tensors` loaded strictly, in eval mode. Names and shapes are compared first, so a mismatch is
    one readable CheckpointError rather than torch's multi-line error."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    wrong = [f"{k} {tuple(tensors[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
             if k in tensors and tensors[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
    if wrong:
        problems.append(f"{len(wrong)} with wrong shape, file vs model (e.g. {'; '.join(wrong[:2])})")
    if problems:
        raise CheckpointError(f"{path}: tensors do not match the model: {'; '.join(problems)}")
    model.load_state_dict(tensors, strict=True)
    return model.eval()


def build_model(path: Path, config: object, tensors: Mapping[str, torch.Tensor]) -> nn.Module:
    """The model `config` (a ModelConfig or its dict) describes, with `tensors` loaded (see load_tensors)."""
    if not isinstance(config, (Mapping, ModelConfig)):
        raise CheckpointError(f"{path}: 'config' must be a dict, got {type(config).__name__}")
    try:
        model = model_from_config(config if isinstance(config, ModelConfig) else dict(config))
    except (ValueError, TypeError) as error:
        raise CheckpointError(f"{path}: bad model config: {one_line(error)}") from None
    return load_tensors(path, model, tensors)


__all__ = ["SAFETENSORS_SUFFIX", "CheckpointError", "one_line", "existing_file", "torch_load", "read_safetensors",
           "is_state_dict", "load_tensors", "build_model"]
