"""lion-export's own checkpoints, which load without running code: a plain dict of config + tensors, or
safetensors + JSON.

File format (torch.save, opens with `torch.load(path, weights_only=True)`):
    {"format": "lion-export", "format_version": 1, "config": model.config.to_dict(), "state_dict": {name: tensor}}
or `<name>.safetensors` (tensors) beside `<name>.json` ({"format", "format_version", "config"}).

A file is read through files.py (no unpickling unless allowed, one CheckpointError per failure); a plain
state_dict, a foreign dict or a bad config is a CheckpointError too. Writes are atomic (temp file + os.replace), so
an interrupted save never leaves a half-written checkpoint under the real name.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lion_export.atomic import atomic_output, write_bytes_atomically
from lion_export.checkpoints.files import (SAFETENSORS_SUFFIX, CheckpointError, build_model, existing_file,
                                           is_state_dict, one_line, read_safetensors, torch_load)
from lion_export.models.presets import config_of

FORMAT = "lion-export"
FORMAT_VERSION = 1


def _tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}


def save_checkpoint(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write `model` (built by create_model) as a lion-export checkpoint at `path`, atomically."""
    path = Path(path)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION,
               "config": config_of(model).to_dict(), "state_dict": _tensors(model)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)
    return path


def save_safetensors(model: nn.Module, path: str | os.PathLike, config_path: str | os.PathLike | None = None
                     ) -> tuple[Path, Path]:
    """Write the tensors to `path` (*.safetensors) and the config to `config_path` (default: same name, .json)."""
    from safetensors.torch import save as safetensors_bytes

    path = Path(path)
    if path.suffix != SAFETENSORS_SUFFIX:
        raise ValueError(f"safetensors files must end in {SAFETENSORS_SUFFIX}, got {path.name!r}")
    config_path = path.with_suffix(".json") if config_path is None else Path(config_path)
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": config_of(model).to_dict()}
    blob = safetensors_bytes(_tensors(model), metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION)})
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomically(path, blob)
    write_bytes_atomically(config_path, json.dumps(header, indent=2).encode() + b"\n")
    return path, config_path


def checkpoint_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of the file's bytes (recorded in export metadata to tie an engine to its weights)."""
    digest = hashlib.sha256()
    with open(existing_file(Path(path), allow_empty=True), "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_header(path: Path, obj: object) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a lion-export checkpoint dict")
    if obj.get("format") != FORMAT:
        if is_state_dict(obj):
            raise CheckpointError(f"{path}: is a plain state_dict without a model config; read it with "
                                  "lion_export.read_model(path) (the architecture inferred, as the CLI does) or "
                                  "lion_export.load_state_dict_file(path, preset, ...)")
        hint = ("; a training checkpoint with 'model' / 'model_ema' weights reads with lion_export.read_model"
                if any(key in obj for key in ("model", "model_ema", "state")) else "")
        raise CheckpointError(f"{path}: not a lion-export checkpoint (no 'format': {FORMAT!r} entry; "
                              f"top-level keys: {one_line(sorted(map(str, obj))[:6], 80)}){hint}")
    if obj.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: unsupported format_version {obj.get('format_version')!r} "
                              f"(this version reads {FORMAT_VERSION})")
    return obj


def is_lion_export_checkpoint(obj: object) -> bool:
    """True for what torch.load returns on a file save_checkpoint wrote (any format_version)."""
    return isinstance(obj, Mapping) and obj.get("format") == FORMAT


def model_from_loaded(path: Path, obj: object) -> nn.Module:
    """The model of an already torch.load'ed lion-export checkpoint (or a whole pickled module)."""
    if isinstance(obj, nn.Module):                                           # only reachable with allow_pickle
        return obj.eval()
    checkpoint = _check_header(path, obj)
    tensors = checkpoint.get("state_dict")
    if not is_state_dict(tensors):
        raise CheckpointError(f"{path}: 'state_dict' must be a non-empty dict of tensors")
    return build_model(path, checkpoint.get("config"), tensors)


def _load_safetensors(path: Path, config_path: Path | None) -> nn.Module:
    config_path = path.with_suffix(".json") if config_path is None else config_path
    if not config_path.is_file():
        raise CheckpointError(f"{path}: needs its model config JSON; expected {config_path} "
                              "(or pass config_path=...)")
    header = read_config_json(config_path)
    tensors = read_safetensors(existing_file(path))
    return build_model(path, header, tensors)


def read_config_json(config_path: Path) -> object:
    """The model config in a JSON file: save_safetensors' {"format", "format_version", "config"} or a bare dict."""
    try:
        header = json.loads(config_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{config_path}: not a readable JSON config: {one_line(error, 100)}") from None
    if isinstance(header, Mapping) and "config" in header:
        header = _check_header(config_path, header)["config"]
    return header


def load_checkpoint(path: str | os.PathLike, *, allow_pickle: bool = False,
                    config_path: str | os.PathLike | None = None) -> nn.Module:
    """Rebuild a model (in eval mode) from a lion-export checkpoint (.pt) or a .safetensors file + JSON config.

    config_path: the JSON config of a .safetensors file (default: the same name with .json); it may be the
    {"format", "format_version", "config"} file save_safetensors writes, or a bare config dict.
    allow_pickle=True also accepts files that need full unpickling (e.g. a torch.save'd nn.Module). That RUNS
    CODE stored in the file: use it only for files from a source you trust.
    Every failure is a CheckpointError with a one-line message.
    """
    path = existing_file(Path(path))
    if path.suffix == SAFETENSORS_SUFFIX:
        return _load_safetensors(path, None if config_path is None else Path(config_path))
    return model_from_loaded(path, torch_load(path, allow_pickle))


__all__ = ["FORMAT", "FORMAT_VERSION", "save_checkpoint", "save_safetensors", "checkpoint_sha256", "load_checkpoint",
           "read_config_json", "is_lion_export_checkpoint", "model_from_loaded"]
