"""examples/long_sequence.py at a tiny size: both models train, LION exports chunked + recurrent with parity and
predictions identical to each other and to eager PyTorch, the softmax twin exports, accuracies and onnxruntime
latency / memory land in the JSON and the plot; and, cheaply, that the example's recipe makes LION-S learn the task
at L = 16 and carry it to L = 64."""
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


def test_curriculum_doubles_from_16_to_the_training_length():
    lengths = [long_sequence.curriculum_length(step, 200, 256) for step in range(200)]
    assert lengths[0] == 16 and lengths[-1] == 256 and lengths == sorted(lengths)
    assert sorted(set(lengths)) == [16, 32, 64, 128, 256] and lengths[100] == 256
    assert {long_sequence.curriculum_length(step, 10, 8) for step in range(10)} == {8}       # shorter than 16
    assert long_sequence.curriculum_length(9, 10, 100) == 100                                # not a power of two


def test_lion_s_learns_the_task_short_and_reads_it_longer():
    import torch

    torch.set_num_threads(1)
    args = long_sequence.parse_args(["--train-len", "16", "--steps", "80", "--eval-lens", "64", "--bench-lens", "64"])
    lion, _ = long_sequence.build_models(args, longest=64)
    _, train_accuracy = long_sequence.train(lion, "LION", args, "cpu")
    ids, labels = long_sequence.eval_set(64, 64)
    assert train_accuracy > 0.9
    assert (long_sequence.eager_predictions(lion, ids) == labels).mean() > 0.9    # 4x the training length


@pytest.mark.slow
def test_pipeline_at_tiny_size(tmp_path):
    done = run_example("--train-len", "32", "--steps", "2", "--dim", "16", "--depth", "1", "--eval-lens", "32,48",
                       "--eval-size", "8", "--bench-lens", "32", "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("parity PASSED") == 2 and "eager vs onnxruntime 0" in done.stdout
    document = json.loads((tmp_path / "long_sequence.json").read_text())
    assert [row["seq_len"] for row in document["accuracy"]] == [32, 48]
    for row in document["accuracy"]:
        assert row["lion_forms_differ"] == 0 and row["lion_eager_differs"] == 0
        assert row["lion_chunked"] == row["lion_recurrent"]
        assert all(0.0 <= row[k] <= 1.0 for k in ("lion_chunked", "lion_recurrent", "softmax"))
    series = {p["series"]: p for p in document["bench"]}
    assert set(series) == {"chunked/onnxruntime", "recurrent/onnxruntime", "softmax/onnxruntime"}
    assert all(p["status"] == "ok" and p["median_ms"] > 0 for p in series.values())
    for name in ("long_sequence.png", "bench.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"



def test_outputs_default_to_a_folder_of_their_own():
    """Without --out the files go under examples/out/ (ignored by git: test_example_digits.py checks), not into
    the directory the script was started from."""
    assert long_sequence.parse_args([]).out == ROOT / "examples" / "out" / "long_sequence"


def test_bad_input_is_one_line_exit_2(tmp_path):
    done = run_example("--eval-lens", "4", "--out", str(tmp_path))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("long_sequence.py: error: ") and "integers >= 8" in lines[0]
