"""Parity verification: the comparator against numpy's own arithmetic, the tolerance table, inputs.npz checks,
and verify_onnx end to end on tiny exported models (passing exports pass; a wrong or shape-frozen export fails)."""
from __future__ import annotations

import copy
import json
import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from lion_export.checkpoints import load_checkpoint, save_checkpoint
from lion_export.cli import main
from lion_export.export import export_onnx
from lion_export.models import create_model, set_form
from lion_export.verify import (TOLERANCES, InputsError, OnnxRuntimeRunner, TorchRunner, compare_outputs,
                                default_seq_lens, graph_input_specs, load_inputs, tolerance_for, verify_files,
                                verify_onnx, write_report)
from lion_export.verify.compare import compare_output
from lion_export.verify.parity import default_image_token_counts
from lion_export.verify.case_inputs import image_size_for_tokens, padded_attention_mask, tokens_for_image


# --- comparator -------------------------------------------------------------------------------------------------

def test_comparator_statistics_match_direct_arithmetic():
    rng = np.random.default_rng(1)
    expected = rng.standard_normal((3, 5, 7))
    actual = (expected + rng.standard_normal(expected.shape) * 1e-6).astype(np.float32)
    out = compare_output("y", expected, actual, tolerance_for("fp32"))
    diff = np.abs(actual.astype(np.float64) - expected)
    assert out.max_abs_error == pytest.approx(diff.max(), rel=1e-12)
    assert out.max_rel_error == pytest.approx((diff / np.abs(expected)).max(), rel=1e-12)
    cos = float(np.sum(expected * actual) / np.linalg.norm(expected) / np.linalg.norm(actual.astype(np.float64)))
    assert out.cosine_similarity == pytest.approx(cos, abs=1e-15)
    assert out.compared == expected.size
    assert out.passed == bool(np.all(diff <= 1e-5 + 1e-4 * np.abs(expected)))


def test_comparator_bound_is_atol_plus_rtol_times_expected():
    tol = tolerance_for("fp32", atol=1e-3, rtol=1e-2)
    expected = np.array([0.0, 10.0])
    bound = np.array([1e-3, 1e-3 + 1e-2 * 10.0])
    assert compare_output("y", expected, expected + bound * 0.99, tol).passed
    failing = compare_output("y", expected, expected + bound * np.array([0.99, 1.01]), tol)
    assert not failing.passed and failing.mismatched == 1


def test_comparator_fails_nan_shape_mismatch_and_missing_outputs():
    tol = tolerance_for("fp32")
    expected = {"a": np.ones((2, 3)), "b": np.ones(4), "c": np.ones(2)}
    actual = {"a": np.array([[1.0, np.nan, 1.0], [1.0, 1.0, 1.0]]), "b": np.ones(5)}
    a, b, c = compare_outputs(expected, actual, tol)
    assert not a.passed and a.max_abs_error == np.inf and a.mismatched == 1
    assert not b.passed and "shape" in b.problem
    assert not c.passed and "missing" in c.problem


def test_comparator_ignores_positions_outside_the_valid_mask():
    expected = np.zeros((2, 4, 3))
    actual = expected.copy()
    actual[1, 3] = 5.0                                  # a padded position: garbage allowed
    valid = np.ones((2, 4), bool)
    valid[1, 3] = False
    assert compare_output("y", expected, actual, tolerance_for("fp32"), valid).passed
    assert not compare_output("y", expected, actual, tolerance_for("fp32")).passed


def test_tolerance_table_defaults_and_overrides():
    assert (TOLERANCES["fp32"].rtol, TOLERANCES["fp32"].atol) == (1e-4, 1e-5)
    assert tolerance_for("fp16").atol > tolerance_for("fp32").atol
    assert tolerance_for("fp32", atol=0.5) == type(TOLERANCES["fp32"])(atol=0.5, rtol=1e-4)
    with pytest.raises(ValueError, match="bf8"):
        tolerance_for("bf8")
    with pytest.raises(ValueError, match="atol"):
        tolerance_for("fp32", atol=-1.0)


# --- inputs -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("tokens", [2, 17, 129, 197, 1024, 1031])
def test_image_size_gives_the_requested_token_count(tokens):
    height, width = image_size_for_tokens(tokens, 16)
    assert height % 16 == 0 and width % 16 == 0 and height <= width
    assert tokens_for_image(height, width, 16) == tokens


def test_padded_mask_has_one_full_row_and_shorter_nonempty_rows():
    mask = padded_attention_mask(3, 10)
    lengths = mask.sum(1)
    assert lengths[0] == 10 and len(set(lengths)) == 3 and lengths.min() >= 1
    assert all((row[:n] == 1).all() and (row[n:] == 0).all() for row, n in zip(mask, lengths))


def test_default_lengths_include_trace_another_and_a_non_multiple_of_the_chunk():
    lengths = default_seq_lens(197, 64)
    assert lengths[0] == 197 and len(lengths) == 3 and len(set(lengths)) == 3
    assert any(n % 64 and n > 64 for n in lengths)
    assert max(default_seq_lens(500, 256, max_len=512)) <= 512
    # a model whose max_len equals the trace length and the chunk: still three distinct lengths, one uneven
    capped = default_seq_lens(64, 64, max_len=64)
    assert len(set(capped)) == 3 and max(capped) <= 64 and any(n % 64 for n in capped)


@pytest.mark.parametrize("trace, chunk", [(17, 64), (17, 8), (5, 2), (197, 64), (26, 13), (5, 1)])
def test_default_image_token_counts_are_three_realisable_grids(trace, chunk):
    counts = default_image_token_counts(trace, chunk)
    assert counts[0] == trace and len(set(counts)) == 3
    assert chunk == 1 or any(n % chunk and n > chunk for n in counts)  # a partial chunk after a full one
    for n in counts:
        height, width = image_size_for_tokens(n, 8)
        assert tokens_for_image(height, width, 8) == n and min(height, width) >= 16   # >= 2 patches a side
    assert default_image_token_counts(17, 64) == [17, 13, 129]      # 4x4, 3x4 and 8x16 patches


# --- runners ----------------------------------------------------------------------------------------------------

def test_torch_runner_uses_a_private_float64_copy_in_the_prepared_form():
    model = set_form(_text_model(), "chunked", chunk_size=16)
    ids = np.random.default_rng(0).integers(0, 64, (2, 37))
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    runner = TorchRunner(model, ["input_ids", "attention_mask"], ["logits"], prepare=lambda m: set_form(m, "parallel"))
    with pytest.raises(RuntimeError, match="outside"):
        runner.infer(feed)
    with runner:
        out = runner.infer(feed)["logits"]
    assert out.dtype == np.float64
    assert model.config.form == "chunked" and next(model.parameters()).dtype == torch.float32   # caller's untouched
    with torch.inference_mode():
        own = model(torch.from_numpy(ids), torch.ones(2, 37, dtype=torch.int64)).numpy()
    np.testing.assert_allclose(own, out, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="optimization"):
        OnnxRuntimeRunner("x.onnx", optimization="max")


# --- end to end on tiny exports ---------------------------------------------------------------------------------

def _text_model(mask: str = "selective") -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("encoder-tiny", mask=mask, vocab_size=64, dim=32, depth=1, num_heads=2, max_len=160).eval()


def _vision_model(**overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("vit-tiny", mask="selective", dim=32, depth=1, num_heads=2, img_size=32, num_classes=5,
                        **overrides).eval()


def _legacy_export(model: torch.nn.Module, path, example: tuple, names: list[str], dynamic: dict) -> None:
    """A parallel-form export with the legacy torch.onnx tracer, which freezes some shapes (not our exporter)."""
    model = set_form(copy.deepcopy(model), "parallel")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, example, str(path), input_names=names, output_names=["out"],
                          dynamic_axes=dynamic, dynamo=False, opset_version=18)


@pytest.fixture(scope="module")
def text_onnx(tmp_path_factory):
    return export_onnx(_text_model(), tmp_path_factory.mktemp("text") / "text.onnx", form="recurrent", seq_len=48)


@pytest.fixture(scope="module")
def vision_files(tmp_path_factory):
    """A vision checkpoint and its export (position embedding on: the token count is fixed at 5)."""
    folder = tmp_path_factory.mktemp("vision")
    model = _vision_model(pos_embed=True)
    checkpoint = save_checkpoint(model, folder / "vit.pt")
    return checkpoint, export_onnx(model, folder / "vit.onnx", form="recurrent", checkpoint_path=checkpoint)


@pytest.fixture(scope="module")
def vision_fp16(vision_files):
    """The fp16 export of vision_files' model, beside it (it takes float16 images)."""
    checkpoint, onnx_file = vision_files
    return export_onnx(load_checkpoint(checkpoint), onnx_file.with_name("vit-fp16.onnx"), form="recurrent",
                       dtype="fp16", checkpoint_path=checkpoint)


def test_text_export_passes_at_three_lengths_with_padded_rows(text_onnx, tmp_path):
    report = verify_onnx(_text_model(), text_onnx, progress=False)
    assert report.passed and report.varied == "seq_len"
    # the trace length read from the file's metadata, another length, one spanning a partial third chunk of 64
    assert [c.seq_len for c in report.cases] == [48, 24, 129]
    assert "(float64)" in report.reference and report.reference.endswith("parallel form")
    for case in report.cases:
        mask = np.array(case.input_shapes["attention_mask"])
        assert mask.tolist() == [2, case.seq_len]
        (out,) = case.outputs
        # padded positions are excluded: fewer elements compared than the output holds
        assert out.compared < np.prod(out.shape) and out.max_abs_error < 1e-5 and out.cosine_similarity > 0.999999
    json_path, png_path = write_report(report, tmp_path / "r" / "report.json")
    data = json.loads(json_path.read_text())
    assert data["passed"] is True and data["tolerance_method"] == "calibrated"
    assert data["cases"][0]["outputs"][0]["tolerance"]["basis"].startswith("calibrated: 4 x eager fp32 error")
    assert png_path.name == "report.errors.png" and png_path.read_bytes()[:4] == b"\x89PNG"


def test_a_wrong_export_fails(text_onnx):
    other = _text_model()
    decay_bias = next(p for name, p in other.named_parameters() if "a_i" in name and name.endswith("bias"))
    with torch.no_grad():
        decay_bias.add_(0.5)                          # a different decay: the graph no longer matches this model
    report = verify_onnx(other, text_onnx, progress=False, seq_lens=[33])
    assert not report.passed
    assert report.cases[0].outputs[0].mismatched > 0 and report.cases[0].outputs[0].max_abs_error > 1e-5


def test_user_inputs_npz_are_used_and_checked(text_onnx, tmp_path):
    specs = graph_input_specs(__import__("onnx").load(str(text_onnx)))
    ids = np.random.default_rng(0).integers(0, 64, (3, 21))
    good = tmp_path / "good.npz"
    np.savez(good, input_ids=ids, attention_mask=np.ones_like(ids))
    report = verify_onnx(_text_model(), text_onnx, inputs=good, progress=False)
    assert report.passed and report.varied == "inputs" and report.cases[0].input_shapes["input_ids"] == [3, 21]

    np.savez(tmp_path / "names.npz", ids=ids, attention_mask=np.ones_like(ids))
    with pytest.raises(InputsError, match="missing \\['input_ids'\\]"):
        load_inputs(tmp_path / "names.npz", specs)
    np.savez(tmp_path / "rank.npz", input_ids=ids[None], attention_mask=np.ones_like(ids))
    with pytest.raises(InputsError, match="rank 2"):
        load_inputs(tmp_path / "rank.npz", specs)
    np.savez(tmp_path / "axes.npz", input_ids=ids, attention_mask=np.ones((3, 22), np.int64))
    with pytest.raises(InputsError, match="axis 'seq_len' is 21"):
        load_inputs(tmp_path / "axes.npz", specs)
    np.savez(tmp_path / "dtype.npz", input_ids=ids.astype(np.float32), attention_mask=np.ones_like(ids))
    with pytest.raises(InputsError, match="float32"):
        load_inputs(tmp_path / "dtype.npz", specs)
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(InputsError, match="junk.npz: not an .npz file \\(no zip archive") as caught:
        load_inputs(tmp_path / "junk.npz", specs)
    assert "pickle" not in str(caught.value)                # numpy's guess for any non-zip file
    (tmp_path / "cut.npz").write_bytes(good.read_bytes()[:100])
    with pytest.raises(InputsError, match="not a readable .npz"):
        load_inputs(tmp_path / "cut.npz", specs)
    np.save(tmp_path / "single.npy", ids)
    with pytest.raises(InputsError, match="a single .npy array"):
        load_inputs(tmp_path / "single.npy", specs)


def test_token_ids_outside_the_vocabulary_are_an_input_error(text_onnx, tmp_path):
    ids = np.full((2, 9), 10_000)                     # the tiny text model's vocabulary is far smaller
    bad = tmp_path / "oov.npz"
    np.savez(bad, input_ids=ids, attention_mask=np.ones_like(ids))
    with pytest.raises(InputsError, match="the PyTorch model cannot run input case"):
        verify_onnx(_text_model(), text_onnx, inputs=bad, progress=False)


def test_a_file_onnxruntime_cannot_load_is_a_clear_error(tmp_path):
    """A custom node whose local function is missing: onnxruntime's own error becomes one ValueError."""
    import onnx
    from onnx import TensorProto, helper

    from lion_export.runners.onnx_runtime import SessionError

    node = helper.make_node("SelectiveScan", ["x"], ["y"], domain="lion")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    path = tmp_path / "orphan.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("lion", 1)]),
              path)
    with pytest.raises(SessionError, match="onnxruntime cannot load .*orphan.onnx"):
        with OnnxRuntimeRunner(path):
            pass


def test_a_graph_that_froze_a_shape_fails_its_case_instead_of_crashing(tmp_path):
    """The legacy TorchScript tracer bakes the trace length into this model's graph: a stand-in for a broken export."""
    model = _text_model("lit")
    path = tmp_path / "frozen.onnx"
    ids = torch.randint(0, 64, (2, 40))
    names = ["input_ids", "attention_mask"]
    _legacy_export(model, path, (ids, torch.ones_like(ids)), names, {n: {0: "batch", 1: "seq"} for n in names})
    report = verify_onnx(model, path, seq_lens=[40, 33], progress=False)
    by_len = {c.seq_len: c for c in report.cases}
    assert by_len[40].passed and not by_len[33].passed and not report.passed
    assert "onnxruntime failed" in by_len[33].outputs[0].problem


def test_vision_model_with_position_embedding_varies_the_batch(vision_files):
    checkpoint, onnx_file = vision_files
    model = load_checkpoint(checkpoint)
    report = verify_onnx(model, onnx_file, progress=False)
    assert report.passed and report.varied == "batch" and report.mode == "recurrent"
    assert [c.batch for c in report.cases] == [1, 2, 3] and {c.seq_len for c in report.cases} == {5}
    assert any("position embedding" in n for n in report.notes)
    with pytest.raises(ValueError, match="fixed at 5 tokens"):
        verify_onnx(model, onnx_file, seq_lens=[17], progress=False)


def test_static_export_without_position_embedding_is_verified_at_its_traced_size(tmp_path):
    """A static export traced at 13 tokens (24x32) is fed 24x32 images, not the config's img_size."""
    model = _vision_model(pos_embed=False, patch_size=8)
    path = export_onnx(model, tmp_path / "static.onnx", form="parallel", static=True, batch=1, seq_len=13)
    report = verify_onnx(model, path, progress=False)
    assert report.passed and report.varied == "batch"
    assert [(c.seq_len, c.input_shapes["images"]) for c in report.cases] == [(13, [1, 3, 24, 32])]
    assert any("static image size" in n for n in report.notes)


def test_fp32_and_fp16_vision_files_each_take_their_own_image_dtype(vision_files, vision_fp16, tmp_path):
    """The fp16 file takes float16 images: both files run on the same generated images, each in its own dtype, and
    the bound is calibrated on the checkpoint found beside them (issue 17, defect 1)."""
    import onnxruntime as ort

    _, onnx_file = vision_files
    saved = tmp_path / "inputs.npz"
    report = verify_files(onnx_file, vision_fp16, progress=False, save_inputs=saved)
    assert report.passed and report.tolerance_method == "calibrated" and report.dtype == "fp16"
    assert any("vit.pt, found beside the files" in n for n in report.notes)
    inputs = np.load(saved)
    for index, case in enumerate(report.cases):       # independently: each file run by hand in its own dtype
        images = inputs[f"case{index}/images"]
        assert images.dtype == np.float32
        out32 = ort.InferenceSession(str(onnx_file)).run(None, {"images": images})[0]
        out16 = ort.InferenceSession(str(vision_fp16)).run(None, {"images": images.astype(np.float16)})[0]
        (out,) = case.outputs
        assert out.max_abs_error == pytest.approx(float(np.abs(out16.astype(np.float64) - out32).max()), rel=1e-6)
        assert out.tolerance.basis.startswith("calibrated") and 0 < out.headroom < 1


def test_integer_images_are_refused_not_cast(vision_files, tmp_path):
    """int64 images given to a float model: one line naming the input and both dtypes, exit 2 (defect 9)."""
    checkpoint, onnx_file = vision_files
    np.savez(tmp_path / "ints.npz", images=np.ones((2, 3, 32, 32), np.int64))
    result = _cli(checkpoint, onnx_file, "--inputs", tmp_path / "ints.npz")
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "'images' is int64, the graph expects float32" in result.stderr, result.stderr


def test_a_text_file_given_as_inputs_is_named_for_what_it_is(vision_files, tmp_path):
    """Not "pickled (object) data" (numpy's guess for anything that is not a zip): one line, exit 2 (defect 9)."""
    checkpoint, onnx_file = vision_files
    (tmp_path / "inputs.txt").write_text("0.1 0.2 0.3\n")
    result = _cli(checkpoint, onnx_file, "--inputs", tmp_path / "inputs.txt")
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "inputs.txt: not an .npz file (no zip archive" in result.stderr and "pickle" not in result.stderr


def test_fp16_tolerance_is_met_by_the_tiny_models(tmp_path):
    torch.manual_seed(0)
    model = create_model("encoder-tiny", mask="selective", vocab_size=64, dim=32, depth=1, num_heads=2, max_len=80,
                         mlm_head=False).eval()          # LayerNorm'd hidden states: outputs of magnitude ~1-4
    path = export_onnx(model, tmp_path / "fp16.onnx", form="recurrent", dtype="fp16")
    report = verify_onnx(model, path, progress=False)
    assert report.dtype == "fp16" and report.passed
    worst = max(o.max_abs_error for c in report.cases for o in c.outputs)
    assert 1e-4 < worst < TOLERANCES["fp16"].atol      # real fp16 rounding, inside the documented bound
    assert not verify_onnx(model, path, dtype="fp32", progress=False).passed


# --- the `verify` command ---------------------------------------------------------------------------------------

def _cli(*args: str):
    return CliRunner().invoke(main, ["verify", *map(str, args)])


def test_cli_verify_passes_and_writes_the_report(vision_files, tmp_path):
    checkpoint, onnx_file = vision_files
    result = _cli(checkpoint, onnx_file, "--report", tmp_path / "out" / "report.json", "--optimization", "disable")
    assert result.exit_code == 0, result.output
    assert "PASSED" in result.output and "B=3 L=5" in result.output and "optimisation disable" in result.output
    assert json.loads((tmp_path / "out" / "report.json").read_text())["passed"] is True
    assert (tmp_path / "out" / "report.errors.png").stat().st_size > 0


def test_cli_verify_exits_1_when_the_checkpoint_does_not_match(vision_files, tmp_path):
    _, onnx_file = vision_files
    torch.manual_seed(1)                                    # other weights, same architecture
    other = save_checkpoint(create_model("vit-tiny", mask="selective", dim=32, depth=1, num_heads=2, img_size=32,
                                         num_classes=5), tmp_path / "other.pt")
    result = _cli(other, onnx_file, "--quiet")
    assert result.exit_code == 1 and "parity FAILED" in result.output


def test_cli_verify_bad_input_is_one_line_and_exit_2(vision_files, tmp_path):
    checkpoint, onnx_file = vision_files
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    np.savez(tmp_path / "wrong.npz", pixels=np.zeros((2, 3, 32, 32), np.float32))
    np.savez(tmp_path / "shape.npz", images=np.zeros((2, 3, 16, 16), np.float32))
    cases = [((tmp_path / "missing.pt", onnx_file), "missing.pt"),
             ((checkpoint, tmp_path / "missing.onnx"), "does not exist"),
             ((checkpoint, tmp_path / "junk.onnx"), "not a readable ONNX model"),
             ((checkpoint, onnx_file, "--inputs", tmp_path / "wrong.npz"), "do not match"),
             ((checkpoint, onnx_file, "--inputs", tmp_path / "shape.npz"), "axis 2 must be 32"),
             ((checkpoint, onnx_file, "--seq-lens", "17,x"), "--seq-lens"),
             ((checkpoint, onnx_file, "--seq-lens", "17"), "fixed at 5 tokens"),
             ((checkpoint, onnx_file, "--batch", "0"), "--batch"),
             ((checkpoint, onnx_file, "--atol", "-1"), "--atol"),
             ((checkpoint, onnx_file, "--optimization", "max"), "--optimization")]
    for args, message in cases:
        result = _cli(*args)
        assert result.exit_code == 2, (args, result.output)
        assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.output
