"""`lion-export CHECKPOINT ...` end to end through click's test runner: export, onnxruntime, parity, bad input.

Every variant x mode x dtype is exported once from a tiny text encoder (depth 1, dim 16) and verified by the
command itself at three lengths: the trace length (24), one shorter than the chunk (12 < 16) and one that is not
a multiple of it (33), on padded batches. The tiny vision model (32 px, patch 8: 17 tokens) runs in each mode too.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner

from lion_export import create_model, load_checkpoint, save_checkpoint, save_safetensors
from lion_export.cli import main
from lion_export.export import DEFAULT_OPSET, MIN_OPSET
from lion_export.scan_op import DOMAIN, OP_TYPE, PLUGIN_NAMESPACE
from lion_export.verify import verify_onnx

CHUNK, TRACE_LEN = 16, 24
TEXT = {"depth": 1, "dim": 16, "num_heads": 2, "vocab_size": 50, "max_len": 64}
VISION = {"depth": 1, "dim": 16, "num_heads": 2, "img_size": 32, "patch_size": 8, "num_classes": 5}


def _checkpoint(directory: Path, preset: str, **config) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(create_model(preset, **config), directory / "model.pt")


def _run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def _files(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


@pytest.mark.parametrize("dtype", ["fp32", "fp16"])
@pytest.mark.parametrize("mode", ["parallel", "chunked", "recurrent"])
@pytest.mark.parametrize("mask", ["lit", "decay", "selective"])
def test_text_export_is_verified_at_three_lengths(tmp_path, mask, mode, dtype):
    checkpoint = _checkpoint(tmp_path, "encoder-tiny", mask=mask, **TEXT)
    report_path = tmp_path / "report.json"
    result = _run(checkpoint, "--mode", mode, "--dtype", dtype, "--chunk-size", CHUNK, "--seq-len", TRACE_LEN,
                  "--report", report_path)
    assert result.exit_code == 0, result.output + result.stderr
    # off a terminal (as here) every phase and verification case ends with a line giving its time
    assert re.search(r"^loading the checkpoint: \d+\.\d s$", result.stderr, re.M), result.stderr
    assert re.search(r"^tracing with torch\.onnx \(1 distinct of 1 blocks\): \d+\.\d s$", result.stderr, re.M)
    assert re.search(r"^done in \d+\.\d s$", result.stderr, re.M), result.stderr
    assert len(re.findall(r"^verifying L=\d+ pad \([123]/3\): \d+\.\d s$", result.stderr, re.M)) == 3
    onnx_path = tmp_path / "model.onnx"                                # next to the checkpoint
    assert onnx_path.is_file()
    assert _files(tmp_path) == {"model.pt", "model.onnx", "report.json", "report.errors.png"}

    report = json.loads(report_path.read_text())
    assert report["passed"] and report["mode"] == mode and report["dtype"] == dtype
    lengths = [case["seq_len"] for case in report["cases"]]
    assert TRACE_LEN in lengths and any(n < CHUNK for n in lengths) and any(n % CHUNK for n in lengths)
    for case in report["cases"]:
        for out in case["outputs"]:
            assert out["passed"] and np.isfinite(out["max_abs_error"])

    proto = onnx.load(onnx_path)
    custom = [n for n in proto.graph.node if n.domain == DOMAIN]
    if mode == "recurrent":
        assert [n.op_type for n in custom] == [OP_TYPE]
        assert [(f.domain, f.name) for f in proto.functions] == [(DOMAIN, OP_TYPE)]
        # the local function as written, without onnxruntime's graph rewrites, passes too
        unoptimised = verify_onnx(load_checkpoint(checkpoint), onnx_path, optimization="disable", progress=False)
        assert unoptimised.passed, unoptimised.to_dict()
    else:                                                              # standard ops only, no control flow
        assert custom == [] and len(proto.functions) == 0
        assert not {n.op_type for n in proto.graph.node} & {"Loop", "Scan", "If"}


@pytest.mark.parametrize("mode, opset", [("parallel", None), ("chunked", 20), ("recurrent", MIN_OPSET)])
def test_vision_export_is_verified(tmp_path, mode, opset):
    checkpoint = _checkpoint(tmp_path, "vit-tiny", mask="selective", **VISION)
    out = tmp_path / "out" / "vit.onnx"
    out.parent.mkdir()
    result = _run(checkpoint, "--mode", mode, "-o", out, "--chunk-size", 8, "--quiet",
                  *(["--opset", opset] if opset else []))
    assert result.exit_code == 0, result.output + result.stderr
    assert result.output.strip() == f"wrote {out}; parity PASSED"
    proto = onnx.load(out)
    assert {o.domain: o.version for o in proto.opset_import}[""] == (opset or DEFAULT_OPSET)
    assert all({o.domain: o.version for o in f.opset_import}[""] == (opset or DEFAULT_OPSET) for f in proto.functions)
    dims = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in (*proto.graph.input, *proto.graph.output)]
    assert dims == [["batch", 3, 32, 32], ["batch", 5]]
    if mode == "recurrent":
        scans = [n for n in proto.graph.node if (n.domain, n.op_type) == (DOMAIN, OP_TYPE)]
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in scans[0].attribute}
        assert attrs == {"normalize": 1, "eps": pytest.approx(1e-6), "plugin_namespace": PLUGIN_NAMESPACE.encode()}


def test_vision_export_without_position_embedding_is_verified_at_three_image_sizes(tmp_path):
    """No learnt positions: the image sides are dynamic, so parity runs at three token counts (the traced 4x4
    patches, a non-square 3x4 and 3x6 = 19 tokens, not a multiple of the chunk), and `verify --seq-lens` takes any
    token counts, realised as near-square images."""
    checkpoint = _checkpoint(tmp_path, "vit-tiny", mask="selective", pos_embed=False, **VISION)
    report_path = tmp_path / "report.json"
    result = _run(checkpoint, "--mode", "recurrent", "--chunk-size", 8, "--quiet", "--report", report_path)
    assert result.exit_code == 0, result.output + result.stderr
    report = json.loads(report_path.read_text())
    assert report["passed"] and report["varied"] == "seq_len"
    cases = [(case["seq_len"], case["input_shapes"]["images"]) for case in report["cases"]]
    assert cases == [(17, [2, 3, 32, 32]), (13, [2, 3, 24, 32]), (19, [2, 3, 24, 48])]

    result = _run("verify", checkpoint, tmp_path / "model.onnx", "--seq-lens", "5,30,41", "--report", report_path)
    assert result.exit_code == 0, result.output + result.stderr
    report = json.loads(report_path.read_text())
    assert report["passed"]
    assert [c["input_shapes"]["images"] for c in report["cases"]] == [[2, 3, 16, 16], [2, 3, 8, 232], [2, 3, 40, 64]]


def test_export_subcommand_name_and_no_verify(tmp_path):
    checkpoint = _checkpoint(tmp_path, "vit-tiny", mask="decay", **VISION)
    result = _run("export", checkpoint, "--mode", "recurrent", "--no-verify", "--quiet", "--static", "--batch", 1)
    assert result.exit_code == 0, result.output + result.stderr
    assert result.output.strip() == f"wrote {tmp_path / 'model.onnx'} (not verified)"
    proto = onnx.load(tmp_path / "model.onnx")
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 32, 32]


def test_safetensors_with_config_and_pickled_module_with_allow_pickle(tmp_path):
    torch.manual_seed(0)
    model = create_model("vit-tiny", mask="lit", **VISION)
    weights, config = save_safetensors(model, tmp_path / "w.safetensors", tmp_path / "cfg.json")
    result = _run(weights, "--config", config, "--mode", "recurrent", "--quiet")
    assert result.exit_code == 0, result.output + result.stderr
    assert result.output.strip() == f"wrote {tmp_path / 'w.onnx'}; parity PASSED"

    torch.save(model, tmp_path / "module.pt")                         # a whole pickled nn.Module
    assert _run(tmp_path / "module.pt", "--no-verify").exit_code == 2
    result = _run(tmp_path / "module.pt", "--allow-pickle", "--mode", "recurrent", "--quiet")
    assert result.exit_code == 0, result.output + result.stderr
    assert (tmp_path / "module.onnx").is_file()


def _bad_cases(tmp_path: Path) -> dict[str, list[str]]:
    good = _checkpoint(tmp_path, "encoder-tiny", **TEXT)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint\n")
    state_dict = tmp_path / "weights.pt"
    torch.save(create_model("encoder-tiny", **TEXT).state_dict(), state_dict)
    pickled = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), pickled)
    (tmp_path / "a_file").write_text("")
    (tmp_path / "a_dir").mkdir()
    return {
        "missing file": [tmp_path / "missing.pt"],
        "directory as checkpoint": [tmp_path / "a_dir"],
        "corrupt checkpoint": [corrupt],
        "text file": [text],
        "plain state_dict": [state_dict],
        "pickled module without --allow-pickle": [pickled],
        "unknown mode": [good, "--mode", "rnn"],
        "zero chunk size": [good, "--chunk-size", "0"],
        "negative chunk size": [good, "--chunk-size", "-4"],
        "non-integer chunk size": [good, "--chunk-size", "big"],
        "opset too old": [good, "--opset", "17"],
        "opset unknown to onnx": [good, "--opset", "99"],
        "output parent is a file": [good, "-o", tmp_path / "a_file" / "m.onnx"],
        "output is a directory": [good, "-o", tmp_path / "a_dir"],
        "unknown dtype": [good, "--dtype", "bf16"],
        "sequence longer than max_len": [good, "--seq-len", "65"],
        "dynamic batch traced from one": [good, "--batch", "1"],
        "report without verification": [good, "--no-verify", "--report", tmp_path / "r.json"],
        "report under a file": [good, "--report", tmp_path / "a_file" / "r.json"],
        "report is a directory": [good, "--report", tmp_path / "a_dir"],
    }


def test_bad_input_is_one_line_exit_2_and_leaves_nothing(tmp_path):
    for name, args in _bad_cases(tmp_path).items():
        before = _files(tmp_path) | {p.name for p in (tmp_path / "a_dir").iterdir()}
        result = _run(*args)
        assert result.exit_code == 2, (name, result.output, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("lion-export: error: "), (name, result.stderr)
        assert "Traceback" not in result.output + result.stderr, name
        assert _files(tmp_path) | {p.name for p in (tmp_path / "a_dir").iterdir()} == before, name


def test_missing_output_directories_are_created(tmp_path):
    checkpoint = _checkpoint(tmp_path, "encoder-tiny", **TEXT)
    result = _run(checkpoint, "-o", tmp_path / "out" / "sub" / "m.onnx", "--no-verify", "--seq-len", TRACE_LEN)
    assert result.exit_code == 0, result.output + result.stderr
    assert _files(tmp_path / "out" / "sub") == {"m.onnx"}


def test_an_unwritable_output_names_the_users_path_not_a_temporary_file(tmp_path):
    checkpoint = _checkpoint(tmp_path, "encoder-tiny", **TEXT)
    result = _run(checkpoint, "-o", "/proc/m.onnx", "--no-verify")
    assert result.exit_code == 2
    assert result.stderr.strip() == "lion-export: error: cannot write /proc/m.onnx: No such file or directory"


def test_debug_shows_the_exception(tmp_path):
    result = _run(tmp_path / "missing.pt", "--debug")
    assert result.exit_code != 0 and result.exception is not None
    assert "no such file" in str(result.exception)
