"""An engine's build record (MODEL.build.json beside MODEL.engine): where it lies, and which file the engine was
built from when that decides how the engine is verified.

An engine file says nothing about its precision (its header holds the TensorRT version and targets only), and an
engine built from an INT8 QDQ file must be verified like that file: against the model fake-quantized with the
file's own scales, which only the source .onnx holds. `build` records the source's path, sha256 and dtype
(engine/build_report.py writes the record); verify reads them here, below the engine layer it never imports.
The sha256 makes sure the scales read are the ones built: a source rewritten since the build is refused.
"""
from __future__ import annotations

import json
from pathlib import Path

INT8 = "int8"              # the dtype of a QDQ file (engine/graph_file.py), and so of its build record


class BuildRecordError(ValueError):
    """The build record says the engine is INT8, but its source file is not where it says, or has changed."""


def build_record_path(engine_path: str | Path) -> Path:
    """Where `build` writes its record by default and readers look for it: MODEL.engine -> MODEL.build.json."""
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.stem + ".build.json")


def read_build_record(engine_path: str | Path) -> dict | None:
    """The build record beside an engine, or None when there is none or it is unreadable."""
    try:
        record = json.loads(build_record_path(engine_path).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def source_candidates(engine_path: str | Path, record: dict) -> tuple[Path, ...]:
    """Where the engine's source .onnx may be: the recorded path as written (relative to the working folder, as
    `build` was given it), then the file of that name beside the engine (the two moved together)."""
    named = record.get("onnx")
    if not isinstance(named, str) or not named:
        return ()
    return tuple(dict.fromkeys((Path(named), Path(engine_path).parent / Path(named).name)))


def int8_source(engine_path: str | Path) -> Path | None:
    """The INT8 QDQ .onnx file an engine was built from, when its build record says it was INT8; None for a float
    engine or one without a record (built elsewhere: verified as a float engine, as before).

    The first of source_candidates whose sha256 is the recorded one is it; BuildRecordError when none is, since a
    float bound would then judge an INT8 engine."""
    from .checkpoints import checkpoint_sha256

    record = read_build_record(engine_path)
    if record is None or record.get("dtype") != INT8:
        return None
    recorded, sha256 = record.get("onnx"), record.get("onnx_sha256")
    record_name = build_record_path(engine_path).name
    if not isinstance(recorded, str) or not isinstance(sha256, str):
        raise BuildRecordError(f"{record_name} says {Path(engine_path).name} is an INT8 engine but records no source "
                               "file and sha256 (built by an older lion-export): rebuild it to verify it")
    candidates = source_candidates(engine_path, record)
    for candidate in candidates:
        if candidate.is_file() and checkpoint_sha256(candidate) == sha256:
            return candidate
    raise BuildRecordError(f"{Path(engine_path).name} was built from the INT8 file {recorded} (sha256 "
                           f"{sha256[:12]}), which is needed for its reference and is not at "
                           f"{' or '.join(str(c) for c in candidates)} unchanged: put it beside the engine")


__all__ = ["BuildRecordError", "INT8", "build_record_path", "read_build_record", "source_candidates", "int8_source"]
