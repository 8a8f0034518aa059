"""What `lion-export` leaves behind and prints, run as a user runs it (a real process, output to a pipe): write
targets checked before any work and their folders created, nothing partial after Ctrl-C or SIGTERM (exit 130 /
143), and plain full-width text when stdout is not a terminal."""
from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from lion_export import create_model, save_checkpoint
from lion_export.cli import main
from lion_export.export import export_onnx

ROOT = Path(__file__).resolve().parents[1]
TEXT = {"depth": 1, "dim": 16, "num_heads": 2, "vocab_size": 50, "max_len": 64}
BOX_DRAWING = re.compile("[\u2500-\u257f]")


def _command(*args: object) -> list[str]:
    return [sys.executable, "-m", "lion_export.cli", *map(str, args)]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _run(*args: object) -> subprocess.CompletedProcess:
    """The command with stdout and stderr pipes (not a terminal), this worktree's code."""
    return subprocess.run(_command(*args), capture_output=True, text=True, env=_env(), timeout=300)


def _invoke(*args: object):
    """The command in this process (quicker: torch is loaded once), output captured as by a pipe."""
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny text checkpoint and its chunked export (which records the checkpoint's sha256)."""
    folder = tmp_path_factory.mktemp("outputs")
    torch.manual_seed(0)
    model = create_model("encoder-tiny", mask="selective", **TEXT)
    checkpoint = save_checkpoint(model, folder / "model.pt")
    onnx_path = export_onnx(model, folder / "model.onnx", chunk_size=8, seq_len=16, checkpoint_path=checkpoint)
    return checkpoint, onnx_path


def test_verify_creates_the_folders_of_its_report_and_saved_arrays(files, tmp_path):
    checkpoint, onnx_path = files
    report, inputs, outputs = tmp_path / "r" / "r.json", tmp_path / "in" / "a" / "i.npz", tmp_path / "out" / "o.npz"
    result = _invoke("verify", checkpoint, onnx_path, "--seq-lens", "16", "--report", report, "--save-inputs", inputs,
                     "--save-outputs", outputs)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1].startswith("parity PASSED")          # the table was printed
    assert json.loads(report.read_text())["passed"]
    assert report.with_name("r.errors.png").is_file() and inputs.is_file() and outputs.is_file()


@pytest.mark.parametrize("args,message", [
    (("build", "{onnx}", "-o", "/proc/m.engine"), "cannot write /proc/m.engine: No such file or directory"),
    (("build", "{missing}", "-o", "/proc/m.engine"), "cannot write /proc/m.engine"),     # before reading the file
    (("{checkpoint}", "-o", "{tmp}/m.onnx", "--engine", "/proc/m.engine"), "cannot write /proc/m.engine"),
    (("{checkpoint}", "-o", "{tmp}/m.onnx", "--report", "/proc/r.json"), "cannot write /proc/r.json"),
    (("verify", "{checkpoint}", "{onnx}", "--report", "/proc/r.json"), "cannot write /proc/r.json"),
    (("verify", "{checkpoint}", "{onnx}", "--save-outputs", "{tmp}/new/o.npz", "--save-inputs", "/proc/i.npz"),
     "cannot write /proc/i.npz"),
    (("{checkpoint}", "-o", "{tmp}/new/m.onnx", "--report", "{tmp}/a_file/r.json"),
     "is not a writable directory"),
])
def test_every_write_target_is_checked_before_the_work(files, tmp_path, args, message):
    checkpoint, onnx_path = files
    (tmp_path / "a_file").write_text("")
    names = {"onnx": onnx_path, "checkpoint": checkpoint, "missing": tmp_path / "missing.onnx", "tmp": tmp_path}
    result = _invoke(*(arg.format(**names) for arg in args))
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("lion-export: error: "), result.stderr
    assert message in result.stderr
    assert result.stdout == ""                                     # no phase, no case, no table: nothing ran
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # and the folders made for the others are gone


def _wait_for(pattern: str, folder: Path, process: subprocess.Popen, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while not list(folder.glob(pattern)):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"no {pattern} in {folder} after {timeout_s} s"
        time.sleep(0.02)


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_export_leaves_nothing(files, tmp_path, signum, code):
    """Stopped while it writes into its hidden staging folder: the staging folder, the folders made for -o and
    --report, and any partial file are all gone, and the exit code is the shell's 128 + signal."""
    checkpoint, _ = files
    output = tmp_path / "out" / "sub" / "m.onnx"
    process = subprocess.Popen(_command(checkpoint, "-o", output, "--report", tmp_path / "reports" / "r.json",
                                        "--seq-len", 16),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    _wait_for(".m.onnx.*.tmp", output.parent, process)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stderr
    assert stderr.strip().splitlines()[-1] == f"lion-export: interrupted ({signal.Signals(signum).name})"
    assert "Traceback" not in stderr
    assert list(tmp_path.iterdir()) == []


def test_piped_inspect_is_plain_text_at_full_width(files):
    checkpoint, onnx_path = files
    result = _run("inspect", onnx_path)
    assert result.returncode == 0, result.stderr
    assert not BOX_DRAWING.search(result.stdout), result.stdout
    sha256 = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("checkpoint_sha256")]
    assert line.split() == ["checkpoint_sha256", sha256]
    assert re.search(r"^in\s+input_ids\s+int64\s+\[batch, seq_len\]$", result.stdout, re.M), result.stdout
    assert "op histogram" in result.stdout and "custom nodes: none" in result.stdout


def test_piped_build_is_plain_text_at_full_width(files, tmp_path):
    pytest.importorskip("tensorrt_rtx_bindings", reason="needs TensorRT-RTX to build an engine")
    _, onnx_path = files
    engine = tmp_path / ("a-long-folder-name-" * 4) / "model.engine"
    result = _run("build", onnx_path, "-o", engine, "--arch", "sm_89")
    assert result.returncode == 0, result.stderr
    assert not BOX_DRAWING.search(result.stdout), result.stdout
    first = result.stdout.splitlines()[0]
    assert first.startswith(f"{engine}  ") and len(first) > 80                  # the path whole, on one line
    assert re.search(r"^layer type\s+count$", result.stdout, re.M), result.stdout
