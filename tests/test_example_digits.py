"""examples/digits.py, the way a user runs it: train (reduced), save, export chunked + recurrent, verify, and the
test set through onnxruntime with exactly the eager model's predictions. And the bundled checkpoint's accuracy."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "digits.py"
BUNDLED = ROOT / "examples" / "lion_s_digits.pt"
ROW = re.compile(r"^digits_(chunked|recurrent)\.onnx\s+(\d+\.\d\d)%\s+(\d+\.\d\d)%\s+(\d+)$", re.M)
INT8_ROW = re.compile(r"^digits_(chunked|recurrent)\.int8\.onnx\s+(\d+\.\d\d)%\s+(\d+\.\d\d)%\s+(\d+)$", re.M)

pytest.importorskip("sklearn", reason="examples/digits.py needs scikit-learn (the 'examples' extra)")


def run_digits(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env,
                          timeout=600)


def accuracy_rows(output: str, row: re.Pattern = ROW) -> dict[str, tuple[float, float, int]]:
    return {form: (float(eager), float(ort), int(diff)) for form, eager, ort, diff in row.findall(output)}


def test_train_export_and_same_predictions(tmp_path):
    done = run_digits("--epochs", "1", "--dim", "16", "--heads", "2", "--depth", "1", "--mask", "decay",
                      "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "epoch   1/1  loss" in done.stdout                       # a line per epoch off a terminal
    assert (tmp_path / "digits.pt").is_file()
    for form in ("chunked", "recurrent"):
        assert (tmp_path / f"digits_{form}.onnx").is_file()
        assert f"exported digits_{form}.onnx and verified it" in done.stdout
    assert done.stdout.count("parity PASSED") == 2
    rows = accuracy_rows(done.stdout)
    assert set(rows) == {"chunked", "recurrent"}
    for eager, ort, differing in rows.values():
        assert eager == ort and differing == 0
    int8 = accuracy_rows(done.stdout, INT8_ROW)                     # beside them, the INT8 files' own rows
    assert set(int8) == {"chunked", "recurrent"}
    for form, (eager, ort, differing) in int8.items():
        assert eager == rows[form][0] and (tmp_path / f"digits_{form}.int8.onnx").is_file()
        assert abs(ort - eager) <= 100 * differing / 360 + 1e-9       # accuracy moves only where predictions do
        assert f"quantized digits_{form}.onnx to digits_{form}.int8.onnx" in done.stdout
    assert "TensorRT:" in done.stdout


def saved_config(path: Path) -> dict:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)["config"]


def example_module():
    sys.path.insert(0, str(SCRIPT.parent))
    import digits

    return digits


def test_bundled_checkpoint_scores_its_documented_accuracy(tmp_path):
    """The README's first command exports this file; its eager accuracy on the fixed test split is the figure the
    README and examples/digits.py quote, 351 of 360 = 97.50% (the export's equality with eager is what the test
    above proves, on a model trained here). The file is what `python examples/digits.py` makes with its defaults;
    its config has every key a checkpoint saved today has."""
    digits = example_module()
    from lion_export import load_checkpoint, save_checkpoint

    data = digits.load_data()
    model = load_checkpoint(BUNDLED)
    correct = int((digits.eager_predictions(model, data.test_x) == data.test_y).sum())
    assert (len(data.test_y), correct) == (360, 351)
    assert "97.50% test accuracy" in SCRIPT.read_text()
    assert BUNDLED.stat().st_size < 400_000
    fresh = save_checkpoint(model, tmp_path / "fresh.pt")
    assert set(saved_config(BUNDLED)) == set(saved_config(fresh))


def test_outputs_default_to_an_ignored_folder_of_their_own():
    """Without --out every file goes to examples/out/digits/ (not the directory the script was started from), and
    git ignores that folder."""
    assert example_module().parse_args([]).out == ROOT / "examples" / "out" / "digits"
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(["git", "check-ignore", "-q", "examples/out/digits/digits_recurrent.engine"], cwd=ROOT)
    assert ignored.returncode == 0


@pytest.mark.parametrize("args,message", [
    (("--mask", "rotary"), "argument --mask: invalid choice: 'rotary'"),
    (("--epochs", "0"), "--epochs must be a positive integer, got 0"),
    (("--dim", "30", "--heads", "4"), "--dim (30) must be a multiple of --heads (4)"),
    (("--checkpoint", "missing.pt"), "--checkpoint missing.pt: no such file"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, args, message):
    done = run_digits(*args, "--out", str(tmp_path))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("digits.py: error: ") and message in lines[0], done.stderr
    assert not list(tmp_path.iterdir())
