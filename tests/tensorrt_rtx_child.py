"""Run TensorRT-RTX parses in a child process, with the parser defect worked around (tests only).

TensorRT-RTX 1.7's ONNX parser dlopens `libtensorrt_rtx.so` at the first plugin-bound node and aborts the process
when only `libtensorrt_rtx.so.1` exists (the wheel ships no unversioned name). The product's fix lives in the engine
layer; tests that only need a parse put a folder holding that symlink on the child's LD_LIBRARY_PATH (read when the
process starts), so the shared environment is never modified, and an abort could only end the child, never pytest.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def tensorrt_rtx_available() -> bool:
    return importlib.util.find_spec("tensorrt_rtx_bindings") is not None


def _library_fix(directory: Path) -> Path:
    """A folder with `libtensorrt_rtx.so -> <tensorrt_rtx_libs>/libtensorrt_rtx.so.1`."""
    spec = importlib.util.find_spec("tensorrt_rtx_libs")
    assert spec is not None and spec.submodule_search_locations, "tensorrt_rtx_libs is not installed"
    library = Path(list(spec.submodule_search_locations)[0]) / "libtensorrt_rtx.so.1"
    directory.mkdir(parents=True, exist_ok=True)
    link = directory / "libtensorrt_rtx.so"
    if not link.is_symlink():
        link.symlink_to(library)
    return directory


def run_child(script: Path, *args: str, scratch: Path, timeout: int = 300) -> dict:
    """Run `script args...` in a fresh Python whose loader finds the symlink; return the JSON its last stdout line
    holds. A crash or non-zero exit fails with the child's stderr tail."""
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(_library_fix(scratch / "libfix")),
                                                         env.get("LD_LIBRARY_PATH")) if p)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    done = subprocess.run([sys.executable, str(script), *args], env=env, capture_output=True, text=True,
                          timeout=timeout)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and lines, f"child exit {done.returncode}: {done.stderr[-3000:]}"
    return json.loads(lines[-1])
