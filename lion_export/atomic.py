"""Atomic output files: a failed or interrupted write never leaves a half-written file under the final name.

Every file the toolkit writes (checkpoints, reports, plots, kernel bundles) goes through `atomic_output`: the data
is written to a temporary file in the destination's own directory (same filesystem, so the final rename is atomic),
flushed to disk, given the permissions an ordinary file would get, and renamed over the destination.
(The ONNX exporter stages a directory instead, because a large model is two files that must appear together.)
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _default_mode() -> int:
    """0o666 minus the process umask: what open() would have given the file (mkstemp gives 0o600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`, on any error it is removed."""
    path = Path(path)
    try:
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:       # name the user's path, not the temporary file's
        raise OSError(error.errno, f"cannot write {path}: {error.strerror or error}") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomically(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` through `atomic_output`; returns the path."""
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


__all__ = ["atomic_output", "write_bytes_atomically"]
