"""`lion-export bench` at tiny sizes: bench.json + bench.png, every point in its own process, absent backends and
impossible lengths recorded instead of failing, the softmax twin computing real softmax attention."""
from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from lion_export import create_model, save_checkpoint
from lion_export.bench import BenchRequest, run_bench
from lion_export.bench.baseline import softmax_twin
from lion_export.cli import main

# 16 px images, patch 4, no position embedding: L = 17 (4x4 patches) and 37 (6x6 at 24 px) both valid
TINY = {"mask": "selective", "img_size": 16, "patch_size": 4, "in_chans": 1, "pos_embed": False, "dim": 16,
        "depth": 1, "num_heads": 2, "num_classes": 3, "chunk_size": 8}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    return save_checkpoint(create_model("vit-tiny", **TINY), tmp_path_factory.mktemp("bench") / "tiny.pt")


def run(*args: str):
    return CliRunner().invoke(main, ["bench", *args], prog_name="lion-export")


def test_bench_writes_json_and_png(checkpoint, tmp_path):
    result = run(str(checkpoint), "--modes", "recurrent", "--backends", "eager,onnxruntime,tensorrt",
                 "--seq-lens", "17,37", "--repeats", "3", "--warmup", "1", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "bench.json").read_text())
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    machine = document["machine"]
    assert machine["cores"] >= 1 and machine["cpu"] and "torch" in machine["libraries"]
    by_series = {}
    for point in document["points"]:
        by_series.setdefault(point["series"], []).append(point)
    assert set(by_series) == {f"{m}/{b}" for m in ("recurrent", "softmax") for b in ("eager", "onnxruntime", "tensorrt")}
    for series in ("recurrent/eager", "recurrent/onnxruntime", "softmax/eager", "softmax/onnxruntime"):
        assert [p["seq_len"] for p in by_series[series]] == [17, 37]
        for point in by_series[series]:
            assert point["status"] == "ok", point
            assert point["runs"] == 3 and len(point["times_ms"]) == 3
            assert point["min_ms"] <= point["q1_ms"] <= point["median_ms"] <= point["q3_ms"] <= point["max_ms"]
            assert point["peak_mib"] >= 0
    if not torch.cuda.is_available():
        for point in by_series["recurrent/tensorrt"] + by_series["softmax/tensorrt"]:
            assert point["status"] == "skipped" and "needs a CUDA GPU" in point["reason"]
        assert "(skipped: needs a CUDA GPU" in result.output
    assert f"wrote {tmp_path / 'bench.json'}" in result.output


def test_quadratic_form_that_cannot_fit_is_recorded_not_run(checkpoint, tmp_path):
    """L = 2^20 + 1 in the parallel form needs terabytes of score matrices: recorded as out_of_memory, no process."""
    document = run_bench(BenchRequest(checkpoint=checkpoint, forms=("parallel",), backends=("eager",),
                                      seq_lens=(17, 2**20 + 1), repeats=1, warmup=0, softmax_baseline=False,
                                      out=tmp_path))
    small, huge = document["points"]
    assert small["status"] == "ok" and small["seq_len"] == 17
    assert huge["status"] == "out_of_memory" and huge["reason"].startswith("not run: its L x L score matrices need")


def test_length_the_model_cannot_take_is_skipped(tmp_path):
    torch.manual_seed(0)
    fixed = save_checkpoint(create_model("vit-tiny", **{**TINY, "pos_embed": True}), tmp_path / "fixed.pt")
    document = run_bench(BenchRequest(checkpoint=fixed, forms=("chunked",), backends=("eager",), seq_lens=(37,),
                                      softmax_baseline=False, out=tmp_path))
    (point,) = document["points"]
    assert point["status"] == "skipped" and "fixes this model at 17 tokens" in point["reason"]


def test_softmax_twin_is_softmax_attention():
    """The baseline's mixer against softmax(q k^T / sqrt(d)) v written out, on the LION model's own projections."""
    torch.manual_seed(0)
    model = create_model("vit-tiny", **TINY).eval()
    twin = softmax_twin(model)
    mixer, attention = model.blocks[0].attn, twin.blocks[0].attn
    x = torch.randn(2, 17, 16, dtype=torch.float64)
    mixer, attention = mixer.double(), attention.double()
    q, k, v = mixer.qkv(x).unflatten(-1, (3, 2, 8)).permute(2, 0, 3, 1, 4)
    weights = torch.softmax(q @ k.transpose(-1, -2) / 8 ** 0.5, dim=-1)
    expected = mixer.proj((weights @ v).transpose(1, 2).flatten(2))
    torch.testing.assert_close(attention(x), expected, rtol=1e-12, atol=1e-12)
    assert model.blocks[0].attn is mixer            # the caller's model keeps its LION mixer


@pytest.mark.parametrize("args,message", [
    (("--modes", "sideways"), "'--modes': 'sideways' is not one of 'parallel', 'chunked', 'recurrent'"),
    (("--backends", "eager,cuda"), "'--backends': 'cuda' is not one of 'eager', 'onnxruntime', 'tensorrt'"),
    (("--seq-lens", "1"), "'--seq-lens': 1 is not in the range x>=2"),
    (("--dtype", "bf16"), "'--dtype': 'bf16' is not one of 'fp32', 'fp16'"),
    (("--warmup", "-1"), "'--warmup': -1 is not in the range x>=0"),
])
def test_bad_options_are_one_line_exit_2(checkpoint, tmp_path, args, message):
    result = run(str(checkpoint), *args, "--out", str(tmp_path))
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lion-export: error: ") and message in lines[0], result.output
    assert not (tmp_path / "bench.json").exists()


@pytest.mark.parametrize("fields,message", [
    ({"forms": ("sideways",)}, "--modes: unknown 'sideways'; choose from parallel, chunked, recurrent"),
    ({"backends": ()}, "--backends: unknown empty list"),
    ({"seq_lens": (256, 1)}, r"--seq-lens must be integers >= 2, got \[256, 1\]"),
    ({"warmup": -1}, "--warmup must be >= 0, got -1"),
])
def test_the_library_checks_a_request_itself(tmp_path, fields, message):
    """Python callers get the same refusals as the command line (whose click types refuse first)."""
    from lion_export.bench import BenchError

    with pytest.raises(BenchError, match=message):
        BenchRequest(checkpoint=tmp_path / "m.pt", out=tmp_path, **fields).check()


def test_missing_checkpoint_is_one_line_exit_2(tmp_path):
    result = run(str(tmp_path / "missing.pt"), "--out", str(tmp_path))
    assert result.exit_code == 2 and "no such file" in result.output
