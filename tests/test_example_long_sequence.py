"""examples/long_sequence.py at a tiny size: both models train, LION exports chunked + recurrent with parity and
identical predictions, the softmax twin exports, accuracies and onnxruntime latency / memory land in the JSON and
the plot."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "long_sequence.py"
sys.path.insert(0, str(SCRIPT.parent))
import long_sequence  # noqa: E402


def run_example(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=900)


def test_task_has_one_marker_followed_by_the_answer():
    ids, labels = long_sequence.make_batch(np.random.default_rng(0), 64, 50)
    assert (ids[:, 0] == long_sequence.QUERY).all()
    values = (ids >= long_sequence.FIRST_VALUE) & (ids < long_sequence.FIRST_VALUE + long_sequence.VALUES)
    assert ((ids == long_sequence.MARKER).sum(1) == 1).all() and (values.sum(1) == 1).all()
    marker = (ids == long_sequence.MARKER).argmax(1)
    assert (ids[np.arange(64), marker + 1] - long_sequence.FIRST_VALUE == labels).all()


@pytest.mark.slow
def test_pipeline_at_tiny_size(tmp_path):
    done = run_example("--train-len", "32", "--steps", "2", "--dim", "16", "--depth", "1", "--eval-lens", "32,48",
                       "--eval-size", "8", "--bench-lens", "32", "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("parity PASSED") == 2
    document = json.loads((tmp_path / "long_sequence.json").read_text())
    assert [row["seq_len"] for row in document["accuracy"]] == [32, 48]
    for row in document["accuracy"]:
        assert row["lion_forms_differ"] == 0 and row["lion_chunked"] == row["lion_recurrent"]
        assert all(0.0 <= row[k] <= 1.0 for k in ("lion_chunked", "lion_recurrent", "softmax"))
    series = {p["series"]: p for p in document["bench"]}
    assert set(series) == {"chunked/onnxruntime", "recurrent/onnxruntime", "softmax/onnxruntime"}
    assert all(p["status"] == "ok" and p["median_ms"] > 0 for p in series.values())
    for name in ("long_sequence.png", "bench.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_bad_input_is_one_line_exit_2(tmp_path):
    done = run_example("--eval-lens", "4", "--out", str(tmp_path))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("long_sequence.py: error: ") and "integers >= 8" in lines[0]
