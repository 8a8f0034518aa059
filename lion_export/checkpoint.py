"""Checkpoints that load without running code: a plain dict of config + tensors, or safetensors + JSON.

File format (torch.save, opens with `torch.load(path, weights_only=True)`):
    {"format": "lion-export", "format_version": 1, "config": model.config.to_dict(), "state_dict": {name: tensor}}
or `<name>.safetensors` (tensors) beside `<name>.json` ({"format", "format_version", "config"}).

Why so strict: a pickled nn.Module runs arbitrary code when unpickled, so it is refused unless the caller opts
in with allow_pickle=True. Every way a file can be wrong (missing, a directory, empty, truncated, corrupt, a plain
state_dict, a foreign dict, a bad config, mismatched tensors) ends in exactly one `CheckpointError` with a one-line
message naming the file, never a traceback from deep inside torch. Writes are atomic (temp file + os.replace), so
an interrupted save never leaves a half-written checkpoint under the real name.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .atomic import atomic_output, write_bytes_atomically
from .models.presets import config_of, create_model, model_from_config

FORMAT = "lion-export"
FORMAT_VERSION = 1
_SAFETENSORS_SUFFIX = ".safetensors"
# training scripts (DeiT, the public LION code) store their argparse options next to the weights; a Namespace
# is a plain attribute bag, safe to rebuild, so state_dict files carrying one load without allow_pickle
_HARMLESS_GLOBALS = [argparse.Namespace]


class CheckpointError(ValueError):
    """A checkpoint file cannot be used; the message is one line and names the file."""


def _one_line(text: object, limit: int = 160) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


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
    if path.suffix != _SAFETENSORS_SUFFIX:
        raise ValueError(f"safetensors files must end in {_SAFETENSORS_SUFFIX}, got {path.name!r}")
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
    with open(_existing_file(Path(path), allow_empty=True), "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _existing_file(path: Path, allow_empty: bool = False) -> Path:
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, expected a checkpoint file (.pt or .safetensors)")
    if not allow_empty and path.stat().st_size == 0:
        raise CheckpointError(f"{path}: file is empty (0 bytes)")
    return path


def _torch_load(path: Path, allow_pickle: bool) -> Any:
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
        raise CheckpointError(f"{path}: cannot unpickle: {_one_line(error, 100)}") from None


def _is_state_dict(obj: object) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _check_tensors(path: Path, model: nn.Module, tensors: Mapping[str, torch.Tensor]) -> None:
    """Compare names and shapes first, so a mismatch is one readable line rather than torch's multi-line error."""
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


def _build(path: Path, config: object, tensors: Mapping[str, torch.Tensor]) -> nn.Module:
    if not isinstance(config, Mapping):
        raise CheckpointError(f"{path}: 'config' must be a dict, got {type(config).__name__}")
    try:
        model = model_from_config(dict(config))
    except (ValueError, TypeError) as error:
        raise CheckpointError(f"{path}: bad model config: {_one_line(error)}") from None
    _check_tensors(path, model, tensors)
    model.load_state_dict(tensors, strict=True)
    return model.eval()


def _check_header(path: Path, obj: object) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a lion-export checkpoint dict")
    if obj.get("format") != FORMAT:
        if _is_state_dict(obj):
            raise CheckpointError(f"{path}: is a plain state_dict without a model config; read it with "
                                  "lion_export.read_model(path) (the architecture inferred, as the CLI does) or "
                                  "lion_export.load_state_dict_file(path, preset, ...)")
        hint = ("; a training checkpoint with 'model' / 'model_ema' weights reads with lion_export.read_model"
                if any(key in obj for key in ("model", "model_ema", "state")) else "")
        raise CheckpointError(f"{path}: not a lion-export checkpoint (no 'format': {FORMAT!r} entry; "
                              f"top-level keys: {_one_line(sorted(map(str, obj))[:6], 80)}){hint}")
    if obj.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: unsupported format_version {obj.get('format_version')!r} "
                              f"(this version reads {FORMAT_VERSION})")
    return obj


def _load_torch(path: Path, allow_pickle: bool) -> nn.Module:
    return _model_from_loaded(path, _torch_load(path, allow_pickle))


def is_lion_export_checkpoint(obj: object) -> bool:
    """True for what torch.load returns on a file save_checkpoint wrote (any format_version)."""
    return isinstance(obj, Mapping) and obj.get("format") == FORMAT


def _model_from_loaded(path: Path, obj: object) -> nn.Module:
    """The model of an already torch.load'ed lion-export checkpoint (or a whole pickled module)."""
    if isinstance(obj, nn.Module):                                           # only reachable with allow_pickle
        return obj.eval()
    checkpoint = _check_header(path, obj)
    tensors = checkpoint.get("state_dict")
    if not _is_state_dict(tensors):
        raise CheckpointError(f"{path}: 'state_dict' must be a non-empty dict of tensors")
    return _build(path, checkpoint.get("config"), tensors)


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as error:                                               # noqa: BLE001 - SafetensorError & co
        raise CheckpointError(f"{path}: not a readable safetensors file (corrupt or truncated?): "
                              f"{_one_line(error, 100)}") from None


def _load_safetensors(path: Path, config_path: Path | None) -> nn.Module:
    config_path = path.with_suffix(".json") if config_path is None else config_path
    if not config_path.is_file():
        raise CheckpointError(f"{path}: needs its model config JSON; expected {config_path} "
                              "(or pass config_path=...)")
    header = read_config_json(config_path)
    tensors = _read_safetensors(_existing_file(path))
    return _build(path, header, tensors)


def read_config_json(config_path: Path) -> object:
    """The model config in a JSON file: save_safetensors' {"format", "format_version", "config"} or a bare dict."""
    try:
        header = json.loads(config_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{config_path}: not a readable JSON config: {_one_line(error, 100)}") from None
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
    path = _existing_file(Path(path))
    if path.suffix == _SAFETENSORS_SUFFIX:
        return _load_safetensors(path, None if config_path is None else Path(config_path))
    return _load_torch(path, allow_pickle)


def _unwrap_state_dict(path: Path, obj: object, weights: str = "model") -> dict[str, torch.Tensor]:
    """The tensors of a training script's file: the dict itself, or under `weights` ('model' or 'model_ema') /
    'state_dict' (DeiT and Lightning save {"model": ..., "optimizer": ..., "args": ...}); a DataParallel 'module.'
    prefix is dropped."""
    if isinstance(obj, Mapping) and not _is_state_dict(obj):
        if weights != "model" and not _is_state_dict(obj.get(weights)):
            raise CheckpointError(f"{path}: has no {weights!r} state_dict")
        for key in (weights, "state_dict", "model_state_dict"):
            if _is_state_dict(obj.get(key)):
                obj = obj[key]
                break
    if not _is_state_dict(obj):
        raise CheckpointError(f"{path}: no state_dict of tensors found (looked at the top level and under "
                              "'model', 'state_dict', 'model_state_dict')")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


def load_state_dict_file(path: str | os.PathLike, preset: str, *, allow_pickle: bool = False,
                         weights: str = "model", **overrides: Any) -> nn.Module:
    """Load a bare state_dict (e.g. trained with the public LION code) into create_model(preset, **overrides).

    The file holds only weights, so the architecture comes from the preset and overrides, which must match the
    training run (e.g. load_state_dict_file("lion_s_tiny.pth", "vit-tiny", mask="selective", pos_embed=False)).
    weights: which entry of a training checkpoint to take, "model" or "model_ema".
    Names and shapes must match exactly (strict=True); a mismatch is a CheckpointError listing examples.
    lion_export.read_model(path) infers the architecture instead.
    Equivalent by hand: `model = create_model(...); model.load_state_dict(sd, strict=True)`.
    """
    path = _existing_file(Path(path))
    try:
        model = create_model(preset, **overrides)
    except ValueError as error:
        raise CheckpointError(f"{path}: {_one_line(error)}") from None
    if path.suffix == _SAFETENSORS_SUFFIX:
        tensors = _read_safetensors(path)
    else:
        obj = _torch_load(path, allow_pickle)
        tensors = _unwrap_state_dict(path, obj.state_dict() if isinstance(obj, nn.Module) else obj, weights)
    _check_tensors(path, model, tensors)
    model.load_state_dict(tensors, strict=True)
    return model.eval()


__all__ = ["FORMAT", "FORMAT_VERSION", "CheckpointError", "save_checkpoint", "save_safetensors", "load_checkpoint",
           "load_state_dict_file", "checkpoint_sha256"]
