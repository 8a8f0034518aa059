"""Everything `build`, `run` and `inspect model.engine` refuse: one line on stderr, exit 2, no engine file left.

Real files throughout: tiny exports (tests/engine_exports.py), copies of them with a broken custom node, hand-made
foreign ONNX graphs, engines built here and copies of them with a damaged header. "TensorRT absent" is a child
process whose `tensorrt` and `tensorrt_rtx_bindings` imports fail (shadow modules first on PYTHONPATH).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
import torch
from click.testing import CliRunner
from onnx import TensorProto, helper

from engine_exports import exported
from lion_export.cli import main
from lion_export.engine.backend import BackendError, ensure_rtx_parser_library, load_backend
from lion_export.runners.trt_engine import NO_GPU

pytest.importorskip("tensorrt_rtx_bindings", reason='needs TensorRT-RTX (pip install "lion-export[tensorrt-rtx]")')

REPO = Path(__file__).resolve().parents[1]


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _one_line_error(result, *fragments: str) -> str:
    assert result.exit_code == 2, result.output + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lion-export: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _no_engine(directory: Path) -> None:
    assert not [p for p in directory.rglob("*") if p.suffix in (".engine", ".json", ".tmp")], list(directory.rglob("*"))


@pytest.fixture(scope="module")
def text_chunked():
    return exported("text", "lit", "chunked", "fp32")


@pytest.fixture(scope="module")
def text_recurrent():
    return exported("text", "lit", "recurrent", "fp16")


@pytest.fixture(scope="module")
def vision_fixed():
    return exported("vision", "lit", "chunked", "fp16", pos_embed=True)


@pytest.fixture(scope="module")
def real_engine(tmp_path_factory, text_recurrent):
    engine = tmp_path_factory.mktemp("engine") / "m.engine"
    assert _run("build", text_recurrent, "-o", engine, "--arch", "sm_89", "--quiet").exit_code == 0
    return engine


def test_missing_garbage_and_foreign_onnx(tmp_path):
    _one_line_error(_run("build", tmp_path / "none.onnx", "-o", tmp_path / "a.engine"), "does not exist")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(os.urandom(256))
    _one_line_error(_run("build", garbage, "-o", tmp_path / "b.engine"), "not a readable ONNX model")
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    foreign = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph), foreign)
    _one_line_error(_run("build", foreign, "-o", tmp_path / "c.engine"), "not a lion-export ONNX file")
    _no_engine(tmp_path)


@pytest.mark.parametrize("damage,message", [
    ("drop_input", "has 3 inputs; SelectiveScan takes 4 (q, k, v, log_decay)"),
    ("drop_attribute", "lacks the attribute(s) ['eps']"),
    ("drop_function", "no local function defining them"),
])
def test_custom_node_with_wrong_inputs_is_refused_before_tensorrt(tmp_path, text_recurrent, damage, message):
    model = onnx.load(str(text_recurrent))
    node = next(n for n in model.graph.node if n.domain == "lion")
    if damage == "drop_input":
        del node.input[-1]
    elif damage == "drop_attribute":
        kept = [a for a in node.attribute if a.name != "eps"]
        del node.attribute[:]
        node.attribute.extend(kept)
    else:
        del model.functions[:]
    broken = tmp_path / "broken.onnx"
    onnx.save(model, broken)
    _one_line_error(_run("build", broken, "-o", tmp_path / "x.engine"), message)
    _no_engine(tmp_path)


@pytest.mark.parametrize("args,message", [
    (("--batch", "4,2,8"), "--batch MIN,OPT,MAX needs min <= opt <= max, got '4,2,8'"),
    (("--seq-len", "1,30,20"), "needs min <= opt <= max"),
    (("--seq-len", "0,4,8"), "sizes must be >= 1"),
    (("--batch", "1,2"), "--batch takes N or MIN,OPT,MAX"),
    (("--seq-len", "1,24,100"), "this model takes at most max_len=64 tokens"),
    (("--image-size", "32x32"), "--image-size is for vision models"),
    (("--arch", "sm_90"), "unknown --arch 'sm_90'; TensorRT-RTX targets: sm_75, sm_80, sm_86, sm_89, sm_120, sm_121"),
    (("--arch", "sm_75"), "builds only fp16 graphs"),
    (("--workspace", "-1"), "Invalid value for '--workspace': -1 is not in the range x>=1"),
    (("--aot",), "--aot needs standard TensorRT >= 10.9 (module tensorrt)"),
    (("--kernels", "."), "--kernels goes with --aot"),
])
def test_bad_profiles_lengths_and_targets(tmp_path, text_chunked, args, message):
    _one_line_error(_run("build", text_chunked, "-o", tmp_path / "m.engine", *args), message)
    _no_engine(tmp_path)


@pytest.mark.parametrize("args,message", [
    (("--seq-len", "20"), "fixed at 17 tokens (32x32 images) by its learnt position embedding"),
    (("--image-size", "64x64"), "takes only 32x32 images"),
    (("--image-size", "30x30"), "takes only 32x32 images"),
])
def test_lengths_a_vision_model_cannot_take(tmp_path, vision_fixed, args, message):
    _one_line_error(_run("build", vision_fixed, "-o", tmp_path / "v.engine", *args), message)
    _no_engine(tmp_path)


def test_unwritable_outputs(tmp_path, text_chunked):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    _one_line_error(_run("build", text_chunked, "-o", blocker / "m.engine"), "is not a writable directory")
    _one_line_error(_run("build", text_chunked, "-o", tmp_path), "is a directory")
    _one_line_error(_run("build", text_chunked, "-o", tmp_path / "m.engine", "--report", blocker / "r.json"),
                    "--report")
    _no_engine(tmp_path)


def _shadowed_env(tmp_path: Path) -> dict[str, str]:
    """PYTHONPATH with modules that make both TensorRT imports fail, ahead of the real ones."""
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    for name in ("tensorrt", "tensorrt_rtx_bindings"):
        (shadow / f"{name}.py").write_text(f"raise ImportError('{name} hidden by the test')\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(shadow), str(REPO)])}


def test_tensorrt_absent_is_one_line_exit_2(tmp_path, text_chunked, real_engine):
    env = _shadowed_env(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    build = subprocess.run([sys.executable, "-m", "lion_export.cli", "build", str(text_chunked), "-o",
                            str(out / "m.engine")], env=env, capture_output=True, text=True, timeout=120)
    assert build.returncode == 2, build.stderr
    lines = build.stderr.strip().splitlines()
    assert len(lines) == 1 and "no TensorRT found" in lines[0] and "lion-export[tensorrt-rtx]" in lines[0]
    _no_engine(out)
    inputs = tmp_path / "x.npz"
    inputs.write_bytes(b"")
    run = subprocess.run([sys.executable, "-m", "lion_export.cli", "run", str(real_engine), "--inputs", str(inputs)],
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0 and "was built by TensorRT-RTX" in run.stderr
    assert "no TensorRT found" in run.stderr


def test_garbage_truncated_and_other_version_engines(tmp_path, real_engine):
    garbage = tmp_path / "garbage.engine"
    garbage.write_bytes(os.urandom(4096))
    _one_line_error(_run("inspect", garbage), "not a TensorRT engine")
    inputs = tmp_path / "x.npz"
    inputs.write_bytes(b"")
    _one_line_error(_run("run", garbage, "--inputs", inputs), "not a TensorRT engine")
    data = bytearray(real_engine.read_bytes())
    truncated = tmp_path / "truncated.engine"
    truncated.write_bytes(data[: len(data) // 2])
    _one_line_error(_run("inspect", truncated), "truncated or damaged TensorRT-RTX engine")

    data[24:28] = bytes([1, 6, 0, 9])
    older = tmp_path / "older.engine"
    older.write_bytes(bytes(data))
    shown = _run("inspect", older)
    assert shown.exit_code == 0 and "built by TensorRT-RTX 1.6.0.9" in shown.stdout
    _one_line_error(_run("run", older, "--inputs", inputs), "was built by TensorRT-RTX 1.6.0.9; this machine has "
                    f"TensorRT-RTX {load_backend().version}: rebuild it here")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the answer of a machine without a CUDA GPU")
def test_run_without_a_gpu_says_so(tmp_path, real_engine):
    inputs = tmp_path / "x.npz"
    inputs.write_bytes(b"")
    _one_line_error(_run("run", real_engine, "--inputs", inputs), NO_GPU)
    _one_line_error(_run("run", real_engine, "--inputs", tmp_path / "missing.npz"), "does not exist")


def test_parser_library_link_is_made_beside_the_library(tmp_path):
    folder = tmp_path / "libs"
    folder.mkdir()
    (folder / "libtensorrt_rtx.so.1").write_bytes(b"stand-in for the library file")
    assert ensure_rtx_parser_library(folder) == folder
    link = folder / "libtensorrt_rtx.so"
    assert link.is_symlink() and os.readlink(link) == "libtensorrt_rtx.so.1"
    assert ensure_rtx_parser_library(folder) == folder              # idempotent
    link.unlink()
    link.symlink_to("gone.so.1")                                     # a stale, dangling link is replaced
    ensure_rtx_parser_library(folder)
    assert os.readlink(link) == "libtensorrt_rtx.so.1"


def test_read_only_library_folder_gives_the_exact_fix(tmp_path, monkeypatch):
    """/sys refuses new files even to root: a real read-only folder standing in for a system-wide install."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("LD_LIBRARY_PATH", raising=False)
    with pytest.raises(BackendError) as error:
        ensure_rtx_parser_library(Path("/sys"))
    cache = tmp_path / "cache" / "lion-export" / "tensorrt-rtx-lib"
    assert f"LD_LIBRARY_PATH={cache}" in str(error.value) and "--no-plugin" in str(error.value)
    assert os.readlink(cache / "libtensorrt_rtx.so") == "/sys/libtensorrt_rtx.so.1"
    (tmp_path / "libs").mkdir()
    (tmp_path / "libs" / "libtensorrt_rtx.so.1").write_bytes(b"x")
    monkeypatch.setenv("LD_LIBRARY_PATH", str(tmp_path / "libs-link"))
    (tmp_path / "libs-link").mkdir()
    (tmp_path / "libs-link" / "libtensorrt_rtx.so").symlink_to(tmp_path / "libs" / "libtensorrt_rtx.so.1")
    assert ensure_rtx_parser_library(Path("/sys")) == tmp_path / "libs-link"   # already fixed by the user
