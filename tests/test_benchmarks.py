"""The GPU benchmark's smoke run: every code path of benchmarks/kernels_gpu.py on the CPU, before a GPU session.

GPU time is scarce (a session may get one short run), so the script must work the first time it meets a GPU. --smoke
runs the same columns, forward and backward, table, goals, JSON and plot under the Triton interpreter with tiny fp32
shapes; this test runs it as a user would, in a subprocess, and checks what it wrote.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parent.parent / "benchmarks" / "kernels_gpu.py"
COLUMNS = [f"{column} {mode}" for column in ("triton-chunked", "torch-chunked", "torch-parallel", "sdpa")
           for mode in ("fwd", "fwd+bwd")] + ["triton-scan fwd"]


def test_smoke_run_writes_every_column(tmp_path: Path) -> None:
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(tmp_path)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "SMOKE RUN" in done.stdout
    results = json.loads((tmp_path / "kernels_gpu.json").read_text())
    assert results["smoke"] is True and results["mode"] == "smoke" and "SMOKE" in results["unit"]
    assert results["complete"] is True and results["skipped_lengths"] == [] and results["errors"] == {}
    assert [row["L"] for row in results["rows"]] == [32, 48]
    for row in results["rows"]:
        assert sorted(k for k in row if k != "L") == sorted(COLUMNS)
        assert all(isinstance(row[k], float) and row[k] > 0 for k in COLUMNS), row
    assert results["goals"] and all(line.startswith("[smoke") for line in results["goals"])
    assert (tmp_path / "kernels_gpu.png").stat().st_size > 0
    assert not list(tmp_path.glob(".*.tmp"))          # the atomic writes left no temp files behind


def test_budget_stops_new_lengths_and_keeps_what_was_measured(tmp_path: Path) -> None:
    """A budget of 0: the first length (the shortest) still runs and is written, the rest listed as skipped."""
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(tmp_path), "--lengths", "48,16",
                           "--budget-s", "0"], env=env, cwd=tmp_path, capture_output=True, text=True, check=False,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "kernels_gpu.json").read_text())
    assert [row["L"] for row in results["rows"]] == [16]
    assert results["skipped_lengths"] == [48] and results["complete"] is False
    assert "skipped (budget): L = [48]" in done.stdout


def test_smoke_never_writes_the_recorded_results() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--smoke"], capture_output=True, text=True, check=False,
                          timeout=120)
    assert done.returncode != 0 and "--smoke needs --out" in done.stderr
