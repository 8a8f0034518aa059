"""Which checkpoint an exported file came from: the exporter records the checkpoint's sha256 in the file's metadata
(lion_export/export/metadata.py, `checkpoint_sha256`; no path is recorded), which ties a file to its weights.

verify uses it twice: a checkpoint named by the user is checked against it (a mismatch is a hint on the verdict
line), and two files compared with each other find their checkpoint beside them by it, so the bound can be
calibrated on eager PyTorch instead of the fixed table.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..artefacts import CHECKPOINT_SUFFIXES


def recorded_sha256(meta: dict) -> str | None:
    """The checkpoint sha256 a file's metadata records, if any."""
    value = meta.get("checkpoint_sha256")
    return value if isinstance(value, str) and value else None


def sha256_hint(checkpoint_path: str | Path | None, meta: dict) -> str | None:
    """A note when the file records being exported from a checkpoint other than this one."""
    recorded = recorded_sha256(meta)
    if checkpoint_path is None or recorded is None:
        return None
    from ..checkpoints import checkpoint_sha256

    actual = checkpoint_sha256(checkpoint_path)
    if actual == recorded:
        return None
    return (f"the checkpoint's sha256 {actual[:12]} differs from the {recorded[:12]} recorded in the file's "
            "metadata: it was exported from another checkpoint")


def find_checkpoint(sha256: str, folders: Iterable[Path]) -> Path | None:
    """The first checkpoint file (by suffix, in name order) in `folders` whose sha256 is `sha256`; None if none.

    Only the folders themselves are searched: the exporter writes CHECKPOINT.onnx beside CHECKPOINT by default, so
    that is where a file's checkpoint is when it is anywhere obvious."""
    from ..checkpoints import checkpoint_sha256

    for folder in dict.fromkeys(Path(f).resolve() for f in folders):
        candidates = sorted(p for p in folder.iterdir() if p.suffix.lower() in CHECKPOINT_SUFFIXES and p.is_file())
        for candidate in candidates:
            try:
                if checkpoint_sha256(candidate) == sha256:
                    return candidate
            except (OSError, ValueError):      # unreadable: not the one
                continue
    return None


__all__ = ["recorded_sha256", "sha256_hint", "find_checkpoint"]
