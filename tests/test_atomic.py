"""Atomic outputs: the final name holds either the old file or the complete new one, never a partial write."""
from __future__ import annotations

import os
import stat

import pytest

from lion_export.atomic import atomic_output, write_bytes_atomically


def test_success_replaces_with_ordinary_permissions(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    write_bytes_atomically(target, b"new contents")
    assert target.read_bytes() == b"new contents"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask     # not mkstemp's private 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]        # no temp file left behind


def test_failure_keeps_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="interrupted"):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_failure_creates_nothing_when_there_was_no_file(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(tmp_path / "new.bin") as tmp:
            tmp.write_bytes(b"partial")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
