"""`write_repository`: a Triton Inference Server model repository, one model folder per artefact.

    REPO/<name>/config.pbtxt     the model's config (model_config.py: Triton's own schema)
    REPO/<name>/1/model.onnx     onnxruntime backend (+ its external data file, under the name the graph records)
    REPO/<name>/1/model.plan     tensorrt backend (an engine that needs no Python plugin)
    REPO/<name>/1/model.py       python backend: lion_export/serving/python_model.py, beside the artefact itself
                                 (any kind: a checkpoint, an .onnx file, an engine), named in the config

The whole repository is written in a hidden folder beside REPO and renamed into place once complete, so a failed
or interrupted run leaves nothing; an existing non-empty REPO is replaced only when asked (`overwrite`).
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .model_config import ServingOptions, config_text, default_backend, model_config
from .signature import ArtefactSignature, artefact_signature

VERSION = "1"
#: the file each backend loads from the version folder by default
MODEL_FILES = {"onnxruntime": "model.onnx", "tensorrt": "model.plan", "python": "model.py"}
PYTHON_MODEL = Path(__file__).with_name("python_model.py")
_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class ModelEntry:
    """One model folder written: its name, artefact, backend, max_batch_size and what the user should know."""

    name: str
    artefact: Path
    backend: str
    folder: Path
    max_batch_size: int
    notes: tuple[str, ...] = ()

    def describe(self) -> str:
        lines = [f"{self.name}: {self.artefact.name} -> {self.backend} backend, max_batch_size "
                 f"{self.max_batch_size} ({self.folder})"]
        return "\n".join([*lines, *(f"  note: {note}" for note in self.notes)])


def model_name(path: Path) -> str:
    """A model name from a file name: its stem, with anything but letters, digits, `_ . -` made `_`."""
    return _NAME.sub("_", path.stem).strip("._") or "model"


def _companions(path: Path) -> list[Path]:
    """Files an artefact is read with: an .onnx file's external data, a safetensors checkpoint's config JSON."""
    found = [path.with_name(path.name + ".data")]
    if path.suffix == ".safetensors":
        found.append(path.with_suffix(".json"))
    return [p for p in found if p.is_file()]


def _notes(signature: ArtefactSignature, backend: str) -> list[str]:
    from .opsets import opset_note

    notes = []
    if signature.opset is not None:
        notes.append(opset_note(signature.opset))
    if backend == "python":
        notes.append("the python backend imports lion_export: install lion-export in the server's Python")
        if signature.kind == "engine":
            notes.append("an engine runs on a CUDA GPU: the server needs one, and the TensorRT that built it")
    if backend == "tensorrt":
        if signature.edition == "TensorRT-RTX":
            notes.append("built by TensorRT-RTX: Triton's tensorrt backend deserializes engines of the standard "
                         "TensorRT it ships, so build the engine with that TensorRT for the container")
        if signature.plugin and "AOT" in signature.plugin:
            notes.append("the AOT plugin's kernels are inside the engine: no plugin library to load")
    return notes


def _write_model(folder: Path, name: str, signature: ArtefactSignature, backend: str,
                 options: ServingOptions) -> ModelEntry:
    version = folder / VERSION
    version.mkdir(parents=True)
    artefact_name = signature.path.name if backend == "python" else None
    config = model_config(name, signature, options, backend, artefact_name)
    if backend == "python":
        shutil.copyfile(PYTHON_MODEL, version / MODEL_FILES["python"])
        shutil.copyfile(signature.path, version / signature.path.name)
    else:
        shutil.copyfile(signature.path, version / MODEL_FILES[backend])
    for companion in _companions(signature.path):
        shutil.copyfile(companion, version / companion.name)
    (folder / "config.pbtxt").write_text(config_text(config))
    return ModelEntry(name, signature.path, backend, folder, config.max_batch_size, tuple(_notes(signature, backend)))


def _names(artefacts: Sequence[Path], model_names: Sequence[str] | None) -> list[str]:
    if model_names is not None and len(model_names) != len(artefacts):
        raise ValueError(f"{len(model_names)} model name(s) for {len(artefacts)} artefact(s): give one per artefact")
    names = list(model_names) if model_names is not None else [model_name(p) for p in artefacts]
    bad = [n for n in names if not n or _NAME.search(n) or n.startswith(".")]
    if bad:
        raise ValueError(f"model names {bad} are not folder names (letters, digits, `_ . -`)")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"two artefacts would be model {', '.join(twice)}: name them with --name")
    return names


def _check_destination(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir} is a file, not a model repository folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise ValueError(f"{out_dir} exists and is not empty: choose another folder or pass --overwrite")


def _move_into_place(staging: Path, out_dir: Path) -> None:
    """Rename the finished repository to `out_dir`, replacing what was there only once the new one is complete."""
    old = None
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.old."))
        os.replace(out_dir, old / "repository")
    os.replace(staging, out_dir)
    if old is not None:
        shutil.rmtree(old)


def write_repository(artefacts: Sequence[str | Path], out_dir: str | Path, *, backend: str | None = None,
                     max_batch_size: int | None = None, dynamic_batching: bool = True,
                     preferred_batch_sizes: Sequence[int] = (), max_queue_delay_us: int = 0, instances: int = 1,
                     kind: str | None = None, accelerator: str | None = None,
                     model_names: Sequence[str] | None = None, overwrite: bool = False,
                     progress: Callable[[str], None] | None = None, threads: int | None = None) -> list[ModelEntry]:
    """Write a Triton model repository at `out_dir` with one model per artefact (see the module docstring).

    backend: onnxruntime, tensorrt or python for every artefact (default: by kind, `default_backend`);
    max_batch_size: None = 8, or an engine profile's largest batch if smaller; 0 = no batching; kind: cpu or gpu
    (default: gpu for engines and an accelerator, else cpu); accelerator: tensorrt or cuda, the
    onnxruntime backend's GPU execution provider; model_names: one per artefact (default: the file stems);
    threads: onnxruntime's threads in each instance (python and onnxruntime backends; default: onnxruntime's own).
    Every setting is checked against every artefact before anything is written; ValueError on the first problem.
    """
    paths = [Path(p) for p in artefacts]
    if not paths:
        raise ValueError("no artefact given")
    out_dir = Path(out_dir)
    options = ServingOptions(backend, max_batch_size, dynamic_batching, tuple(preferred_batch_sizes),
                             max_queue_delay_us, instances, kind, accelerator, threads)
    options.check()
    names = _names(paths, model_names)
    _check_destination(out_dir, overwrite)
    signatures = []
    for path in paths:
        if progress is not None:
            progress(f"reading {path.name}")
        signature = artefact_signature(path)
        model_config(model_name(path), signature, options, backend or default_backend(signature))  # refuse early
        signatures.append(signature)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.parent / f".{out_dir.name}.{secrets.token_hex(4)}.tmp"
    staging.mkdir()             # mkdir, not mkdtemp: the folder gets the umask's permissions, not 0o700
    try:
        entries = []
        for name, signature in zip(names, signatures):
            if progress is not None:
                progress(f"writing {name}")
            entry = _write_model(staging / name, name, signature, backend or default_backend(signature), options)
            entries.append(entry)
        _move_into_place(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [ModelEntry(e.name, e.artefact, e.backend, out_dir / e.name, e.max_batch_size, e.notes) for e in entries]


__all__ = ["ModelEntry", "MODEL_FILES", "VERSION", "model_name", "write_repository"]
