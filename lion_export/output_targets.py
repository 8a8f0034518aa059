"""Every file and folder a command (or an engine build) will write, checked before the work starts, not found
unwritable after it.

An export, a verification or an engine build takes seconds to minutes; a report path under /proc, a folder that
does not exist yet, or an output that is a directory must stop the command before that time is spent. Missing
folders are created (as `-o new/dir/model.onnx` always did), and removed again if the command then fails or is
interrupted before writing anything into them: a failed command leaves no trace. Whether a place is writable is
found out by writing there (a hidden temporary file, removed at once): permission bits do not tell root, nor a
read-only mount, nor /proc.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path


class OutputTargetError(ValueError):
    """A path the command could not write; the message names the option and the path."""


def _create_folder(option: str, target: Path, folder: Path) -> list[Path]:
    """Create `folder` (and its missing parents) for `target`; returns the folders created."""
    missing = []
    ancestor = folder
    while not ancestor.exists() and ancestor != ancestor.parent:
        missing.append(ancestor)
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputTargetError(f"{option} {target} cannot be created: {ancestor} is not a writable directory")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputTargetError(f"{option} {target} cannot be created: {error.strerror or error}") from None
    return missing


def _probe(folder: Path, target: Path) -> None:
    """Write and remove a hidden file in `folder`, as atomic_output will when the real file is written."""
    try:
        handle, name = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as error:
        raise OutputTargetError(f"cannot write {target}: {error.strerror or error}") from None
    os.close(handle)
    os.unlink(name)


@contextmanager
def output_targets(files: Mapping[str, Path | None],
                   folders: Mapping[str, Path | None] | None = None) -> Iterator[None]:
    """Check (and create the folders of) every output before the block runs; on any failure or interrupt in it,
    remove the folders created here that are still empty.

    files: {option: file path} (None: not asked for); folders: {option: folder the command writes into}.
    Raises OutputTargetError (a ValueError) naming the first path that cannot be written.
    """
    created: list[Path] = []
    try:
        for option, path in files.items():
            if path is None:
                continue
            if path.is_dir():
                raise OutputTargetError(f"{option} {path} is a directory; give a file name in it")
            created += _create_folder(option, path, path.parent)
            _probe(path.parent, path)
        for option, folder in (folders or {}).items():
            if folder is None:
                continue
            if folder.exists() and not folder.is_dir():
                raise OutputTargetError(f"{option} {folder} is not a directory")
            created += _create_folder(option, folder, folder)
            _probe(folder, folder / "output")
        yield
    except BaseException:
        for folder in sorted(created, key=lambda f: len(f.parts), reverse=True):
            try:
                folder.rmdir()          # deepest first; one holding a finished file stays
            except OSError:
                continue
        raise


__all__ = ["OutputTargetError", "output_targets"]
