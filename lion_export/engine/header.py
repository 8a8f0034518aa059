"""What an engine file says about itself, read from its first 64 bytes: no GPU and no TensorRT needed.

Layout observed on TensorRT-RTX 1.7 engines built here (NVIDIA does not document it), little-endian:
    0..3    magic: b"vtrt" (TensorRT-RTX); standard TensorRT plans start b"ftrt"
    16..23  uint64 size of the whole engine in bytes
    24..27  version major, minor, patch, build of the TensorRT that built it
    32      target bit mask (TensorRT-RTX only; bits in targets.TARGETS)
Standard TensorRT plans are read with the same offsets for size and version (the layout public tools use for their
version checks); this project had no standard-TensorRT engine to confirm it on, so `inspect` labels those fields
as such. Anything else (too short, another magic, a size that does not match the file) is an EngineFileError:
the one clear message for "this is not an engine" shared by `inspect`, `run` and the TensorRT runner.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

from .rtx_targets import targets_from_mask

HEADER_BYTES = 64
EDITIONS = {b"vtrt": "TensorRT-RTX", b"ftrt": "TensorRT"}


class EngineFileError(ValueError):
    """The path is missing, or is not a TensorRT engine file this toolkit can read."""


@dataclass(frozen=True)
class EngineHeader:
    """The decoded header; `to_dict()` is what `inspect --json` prints."""

    path: str
    file_bytes: int
    edition: str
    version: str
    engine_bytes: int
    targets: list[str] = field(default_factory=list)      # --arch names, TensorRT-RTX only
    unknown_target_bits: int = 0
    verified_layout: bool = True                          # False for standard TensorRT (see the module docstring)

    @property
    def is_rtx(self) -> bool:
        return self.edition == "TensorRT-RTX"

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def read_engine_header(path: str | Path) -> EngineHeader:
    """Decode `path`'s header; EngineFileError (one line) when it is not a readable TensorRT engine."""
    path = Path(path)
    if not path.is_file():
        raise EngineFileError(f"engine file {str(path)!r} does not exist")
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(HEADER_BYTES)
    magic = head[:4]
    if len(head) < HEADER_BYTES or magic not in EDITIONS:
        raise EngineFileError(f"{path}: not a TensorRT engine (no TensorRT or TensorRT-RTX header: starts with "
                              f"{head[:4]!r}, {size} bytes)")
    edition = EDITIONS[magic]
    (engine_bytes,) = struct.unpack_from("<Q", head, 16)
    major, minor, patch, build = head[24:28]
    if edition == "TensorRT-RTX" and engine_bytes != size:
        raise EngineFileError(f"{path}: truncated or damaged {edition} engine (header says {engine_bytes} bytes, "
                              f"the file has {size})")
    targets, unknown = targets_from_mask(head[32]) if edition == "TensorRT-RTX" else ([], 0)
    return EngineHeader(path=str(path), file_bytes=size, edition=edition, version=f"{major}.{minor}.{patch}.{build}",
                        engine_bytes=engine_bytes, targets=[t.name for t in targets], unknown_target_bits=unknown,
                        verified_layout=edition == "TensorRT-RTX")


__all__ = ["EngineFileError", "EngineHeader", "HEADER_BYTES", "EDITIONS", "read_engine_header"]
