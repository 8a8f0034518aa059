"""The parity check's pieces against direct arithmetic (headroom, the error statistic, the calibrated bound,
per-output tolerances, plain tables) and the verify / export options end to end through the CLI: --json,
--atol/--rtol [OUTPUT:]X, --check-error-stat, --tolerance, --providers, --save-inputs / --load-inputs /
--save-outputs, two files compared, engines, the sha256 hint and per-block localisation."""
from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from onnx import numpy_helper

from lion_export import create_model, save_checkpoint
from lion_export.checkpoints import checkpoint_sha256
from lion_export.cli import main
from lion_export.export import export_onnx
from lion_export.verify.calibration import FACTOR, FLOOR_ULPS, calibrated_tolerance
from lion_export.verify.compare import compare_output
from lion_export.verify.parity_report import plain_table
from lion_export.verify.stress import spread_decays
from lion_export.verify import TOLERANCES, verify_files
from lion_export.verify.tolerances import Tolerance, ToleranceRequest

TEXT = {"depth": 2, "dim": 16, "num_heads": 2, "vocab_size": 50, "max_len": 64}


# --- pieces -----------------------------------------------------------------------------------------------------

def test_headroom_is_error_over_bound_and_the_statistic_decides():
    expected = np.array([0.0, 1.0, -2.0, 4.0])
    actual = expected + np.array([1e-3, 1e-3, -6e-3, 0.0])
    tol = Tolerance(atol=1e-3, rtol=1e-3)
    bound = 1e-3 + 1e-3 * np.abs(expected)
    ratio = np.abs(actual - expected) / bound
    worst = compare_output("y", expected, actual, tol)
    assert worst.max_headroom == pytest.approx(ratio.max()) and worst.headroom == pytest.approx(ratio.max())
    assert not worst.passed and worst.mismatched == int((ratio > 1).sum()) == 1
    mean = compare_output("y", expected, actual, tol, error_stat="mean")
    assert mean.headroom == pytest.approx(ratio.mean()) and mean.passed          # 0.875 on average
    median = compare_output("y", expected, actual, tol, error_stat="median")
    assert median.headroom == pytest.approx(np.median(ratio)) and median.passed
    assert worst.mean_abs_error == pytest.approx(np.abs(actual - expected).mean())
    with pytest.raises(ValueError, match="error_stat"):
        compare_output("y", expected, actual, tol, error_stat="p99")


def test_a_zero_bound_passes_only_exact_matches():
    exact = compare_output("y", np.ones(3), np.ones(3), Tolerance(0.0, 0.0))
    assert exact.passed and exact.headroom == 0.0
    off = compare_output("y", np.ones(3), np.array([1.0, 1.0, 1.0 + 1e-12]), Tolerance(0.0, 0.0))
    assert not off.passed and off.headroom == np.inf


def test_calibrated_bound_is_factor_times_eager_error_plus_floor():
    rng = np.random.default_rng(0)
    expected = rng.standard_normal((2, 5, 3)) * 3
    eager = expected + rng.standard_normal(expected.shape) * 1e-6
    valid = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    eager[0, 4] += 1.0                                        # a padded position: must not count
    tol = calibrated_tolerance(expected, eager, "fp32", valid)
    kept = valid[..., None].repeat(3, -1)
    error = np.abs(eager - expected)[kept].max()
    floor = FLOOR_ULPS * 2.0**-24 * np.abs(expected[kept]).max()
    assert tol.atol == pytest.approx(FACTOR * error + floor) and tol.rtol == 0.0
    assert tol.basis.startswith(f"calibrated: {FACTOR:g} x eager fp32 error")
    exact = calibrated_tolerance(expected, expected, "fp16")                # eager exact: the floor remains
    assert exact.atol == pytest.approx(FLOOR_ULPS * 2.0**-11 * np.abs(expected).max())


def test_per_output_tolerances_override_the_global_ones():
    request = ToleranceRequest.build("fixed", atol={None: 1e-3, "logits": 1e-6}, rtol=0.5)
    base = Tolerance(1.0, 1.0, "table")
    assert request.apply(base, "logits") == Tolerance(1e-6, 0.5)
    assert request.apply(base, "hidden") == Tolerance(1e-3, 0.5)
    assert ToleranceRequest.build().apply(base, "logits") is base
    request.check_outputs(["logits"])
    with pytest.raises(ValueError, match="unknown output"):
        ToleranceRequest.build(atol={"logitz": 1.0}).check_outputs(["logits"])
    with pytest.raises(ValueError, match="rtol"):
        ToleranceRequest.build(rtol=-1.0)
    with pytest.raises(ValueError, match="tolerance must be one of"):
        ToleranceRequest.build("loose")


def test_plain_tables_keep_every_character():
    long = "sha256:" + "f" * 90
    text = plain_table(["name", "value"], [[long, "1.5"], ["x", "n/a"]])
    assert long in text and max(map(len, text.splitlines())) > 80
    assert text.splitlines()[2].endswith("1.5") and text.splitlines()[3].endswith("n/a")   # numbers right-aligned


# --- the CLI ----------------------------------------------------------------------------------------------------

def _model(seed: int = 0):
    torch.manual_seed(seed)
    return spread_decays(create_model("encoder-tiny", mask="selective", **TEXT).eval())


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A checkpoint, its fp32 and fp16 recurrent exports (sha256 recorded) and another checkpoint."""
    folder = tmp_path_factory.mktemp("options")
    checkpoint = save_checkpoint(_model(), folder / "model.pt")
    other = save_checkpoint(_model(seed=1), folder / "other.pt")
    exports = {dtype: export_onnx(_model(), folder / f"model-{dtype}.onnx", form="recurrent", dtype=dtype,
                                  chunk_size=8, seq_len=24, checkpoint_path=checkpoint) for dtype in ("fp32", "fp16")}
    return folder, checkpoint, other, exports


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_json_is_the_only_thing_on_stdout(files):
    _, checkpoint, _, exports = files
    result = _run("verify", checkpoint, exports["fp32"], "--seq-lens", "19", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["passed"] and report["tolerance_method"] == "calibrated" and report["per_block"] is None
    (out,) = report["cases"][0]["outputs"]
    assert out["tolerance"]["basis"].startswith("calibrated") and 0 < out["headroom"] < 0.5
    assert out["mismatched"] == 0 and out["compared"] > 0 and report["hint"] is None


def test_per_output_atol_fails_and_names_the_block(files):
    _, checkpoint, _, exports = files
    result = _run("verify", checkpoint, exports["fp32"], "--seq-lens", "19", "--atol", "logits:1e-12", "--json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    (out,) = report["cases"][0]["outputs"]
    assert out["tolerance"]["atol"] == 1e-12 and out["tolerance"]["basis"].startswith("atol 1e-12 given")
    assert not out["passed"] and out["mismatched"] > 0
    blocks = report["per_block"]                              # made automatically on the failure
    assert [s["stage"] for s in blocks["stages"]] == ["embeddings", "blocks.0 mixer", "blocks.0 MLP",
                                                       "blocks.1 mixer", "blocks.1 MLP", "head"]
    assert all(s["passed"] for s in blocks["stages"])         # the per-block bounds are the calibrated ones
    assert blocks["finding"].startswith("every stage is within its bound")


def test_error_stat_and_fixed_tolerance(files):
    _, checkpoint, _, exports = files
    tight = ("--atol", "2e-8", "--rtol", "0")
    worst = _run("verify", checkpoint, exports["fp32"], "--seq-lens", "19", "--tolerance", "fixed", *tight, "--json")
    median = _run("verify", checkpoint, exports["fp32"], "--seq-lens", "19", "--tolerance", "fixed", *tight,
                  "--check-error-stat", "median", "--json")
    max_report, median_report = json.loads(worst.stdout), json.loads(median.stdout)
    (max_out,), (median_out,) = max_report["cases"][0]["outputs"], median_report["cases"][0]["outputs"]
    assert max_out["max_abs_error"] == median_out["max_abs_error"] > 2e-8      # the same run, judged two ways
    assert worst.exit_code == 1 and median.exit_code == 0 and median_out["headroom"] < 1 < max_out["headroom"]
    assert max_report["tolerance_method"] == "fixed"


def test_inputs_and_outputs_are_saved_and_reloaded(files, tmp_path):
    _, checkpoint, _, exports = files
    saved_in, saved_out = tmp_path / "cases.npz", tmp_path / "outputs.npz"
    first = _run("verify", checkpoint, exports["fp32"], "--save-inputs", saved_in, "--save-outputs", saved_out)
    assert first.exit_code == 0, first.output
    inputs, outputs = np.load(saved_in), np.load(saved_out)
    assert sorted(inputs.files) == sorted(f"case{i}/{n}" for i in range(3) for n in ("input_ids", "attention_mask"))
    assert {"case0/expected/logits", "case0/actual/logits", "case0/eager-fp32/logits"} <= set(outputs.files)
    mask = inputs["case0/attention_mask"].astype(bool)
    diff = np.abs(outputs["case0/actual/logits"] - outputs["case0/expected/logits"])[mask]
    assert 0 < diff.max() < 1e-5
    again = _run("verify", checkpoint, exports["fp32"], "--load-inputs", saved_in, "--json")
    report = json.loads(again.stdout)
    assert [c["label"] for c in report["cases"]] == [f"cases.npz[case{i}]" for i in range(3)]
    assert [c["input_shapes"] for c in report["cases"]] == [
        {n: list(inputs[f"case{i}/{n}"].shape) for n in ("input_ids", "attention_mask")} for i in range(3)]


def test_two_files_are_compared_on_the_same_inputs(files):
    _, _, _, exports = files
    result = _run("verify", exports["fp32"], exports["fp16"], "--seq-lens", "19")
    assert result.exit_code == 0, result.output
    assert "model-fp16.onnx vs model-fp32.onnx" in result.output and "calibrated bounds from" in result.output
    result = _run("verify", exports["fp32"], exports["fp16"], "--seq-lens", "19", "--atol", "1e-9", "--quiet")
    assert result.exit_code == 1 and result.output.strip() == f"parity FAILED: {exports['fp16']}"


def test_two_files_are_calibrated_on_the_checkpoint_beside_them(files, tmp_path):
    """fp32 vs fp16 (defect 1): the checkpoint whose sha256 the files record is found beside them, and each output's
    bound is 4 x (eager fp32's error + eager fp16's error against float64) + the fp16 floor, in either order."""
    folder, checkpoint, _, exports = files
    saved_in, saved_out = tmp_path / "in.npz", tmp_path / "out.npz"
    report = verify_files(exports["fp32"], exports["fp16"], seq_lens=[19], progress=False, save_inputs=saved_in,
                          save_outputs=saved_out)
    assert report.passed and report.tolerance_method == "calibrated" and report.hint is None
    assert f"calibrated on {checkpoint}, found beside the files: its sha256 matches their metadata" in report.notes
    inputs, outputs = np.load(saved_in), np.load(saved_out)
    mask = inputs["case0/attention_mask"].astype(bool)
    exact = outputs["case0/float64/logits"][mask]
    errors = [np.abs(outputs[f"case0/eager-{d} for {side}/logits"][mask] - exact).max()
              for d, side in (("fp32", "expected"), ("fp16", "actual"))]
    (out,) = report.cases[0].outputs
    assert 0 < errors[0] < 1e-5 < errors[1]
    assert out.tolerance.atol == pytest.approx(FACTOR * sum(errors) + FLOOR_ULPS * 2**-11 * np.abs(exact).max())
    diff = np.abs(outputs["case0/actual/logits"].astype(np.float64) - outputs["case0/expected/logits"])[mask]
    assert out.max_abs_error == pytest.approx(diff.max()) and out.headroom < 1
    reverse = verify_files(exports["fp16"], exports["fp32"], seq_lens=[19], progress=False)
    assert reverse.passed and reverse.cases[0].outputs[0].tolerance.atol == pytest.approx(out.tolerance.atol)


def _elsewhere(exports: dict, folder) -> dict:
    """The two exports copied to a folder without their checkpoint."""
    folder.mkdir()
    return {dtype: shutil.copy(path, folder / path.name) for dtype, path in exports.items()}


def test_without_the_checkpoint_the_fixed_table_is_the_last_resort(files, tmp_path):
    _, checkpoint, other, exports = files
    alone = _elsewhere(exports, tmp_path / "alone")
    shutil.copy(other, tmp_path / "alone" / "other.pt")       # a checkpoint beside them, but not theirs
    report = verify_files(alone["fp32"], alone["fp16"], seq_lens=[19], progress=False)
    assert report.tolerance_method == "fixed" and report.passed
    assert report.cases[0].outputs[0].tolerance == TOLERANCES["fp16"]
    assert any("fixed fp16 table applies (no checkpoint to calibrate against, the last resort" in n
               for n in report.notes)
    named = _run("verify", alone["fp32"], alone["fp16"], "--seq-lens", "19", "--checkpoint", checkpoint, "--json")
    assert named.exit_code == 0, named.output
    assert json.loads(named.stdout)["tolerance_method"] == "calibrated"
    wrong = _run("verify", alone["fp32"], alone["fp16"], "--seq-lens", "19", "--checkpoint", other, "--json")
    assert "differs from the" in json.loads(wrong.stdout)["hint"]
    twice = _run("verify", checkpoint, alone["fp16"], "--checkpoint", checkpoint)
    assert twice.exit_code == 2 and "--checkpoint is for two files" in twice.stderr


def test_a_checkpoint_found_but_unreadable_is_a_note_not_an_error(files, tmp_path):
    """The files name (by sha256) a checkpoint beside them that does not load: fixed table, and the note says why."""
    _, _, _, exports = files
    alone = _elsewhere(exports, tmp_path / "alone")
    junk = tmp_path / "alone" / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    for path in alone.values():
        proto = onnx.load(str(path))
        next(e for e in proto.metadata_props if e.key == "checkpoint_sha256").value = checkpoint_sha256(junk)
        onnx.save(proto, str(path))
    report = verify_files(alone["fp32"], alone["fp16"], seq_lens=[19], progress=False)
    assert report.tolerance_method == "fixed"
    assert any(n.startswith(f"{junk} matches the files' checkpoint sha256 but cannot be read") for n in report.notes)


def test_a_wrong_fp16_file_fails_the_calibrated_bound(files, tmp_path):
    """The fp16 file's token embedding moved by 3 % (random signs, ~60 fp16 ulps): it no longer computes the model.
    (Its q / k projections would not do: the attention's row normalisation all but cancels a change there.)"""
    _, _, _, exports = files
    proto = onnx.load(str(exports["fp16"]))
    weight = next(i for i in proto.graph.initializer if i.name == "token_embed.weight")
    values = numpy_helper.to_array(weight).astype(np.float32)
    signs = np.random.default_rng(0).choice([-1.0, 1.0], values.shape)
    weight.CopyFrom(numpy_helper.from_array((values * (1 + 3e-2 * signs)).astype(np.float16), weight.name))
    wrong = exports["fp16"].parent / "wrong-fp16.onnx"      # beside the checkpoint: calibrated
    try:
        onnx.save(proto, str(wrong))
        report = verify_files(exports["fp32"], wrong, seq_lens=[19], progress=False)
    finally:
        wrong.unlink()
    assert report.tolerance_method == "calibrated" and not report.passed
    assert report.cases[0].outputs[0].headroom > 2


def test_a_different_checkpoint_gets_the_sha256_hint_in_full(files):
    _, _, other, exports = files
    result = _run("verify", other, exports["fp32"], "--seq-lens", "19")
    assert result.exit_code == 1
    verdict = result.output.strip().splitlines()[-1]
    assert verdict.startswith("parity FAILED") and "hint: the checkpoint's sha256" in verdict
    assert len(verdict) > 80                                  # piped output is not cut at 80 columns
    assert "per block: error first exceeds its bound at embeddings" in result.output


def test_bad_options_are_one_line_and_exit_2(files, tmp_path):
    import onnxruntime

    _, checkpoint, other, exports = files
    (tmp_path / "model.engine").write_bytes(b"not an engine")
    cases = [(("--atol", "logitz:1"), "unknown output"), (("--atol", "x"), "--atol"), (("--rtol", ":1"), "--rtol"),
             (("--check-error-stat", "p99"), "--check-error-stat"), (("--tolerance", "loose"), "--tolerance"),
             (("--providers", "gpu"), "unknown onnxruntime provider 'gpu'"),
             (("--save-inputs", tmp_path), "--save-inputs")]
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        cases.append((("--providers", "cpu,cuda"), "lacks CUDAExecutionProvider"))
    for args, message in cases:
        result = _run("verify", checkpoint, exports["fp32"], *args)
        assert result.exit_code == 2, (args, result.output)
        assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, (args, result.stderr)
    for pair, message in [((checkpoint, other), "both checkpoints"),
                          ((checkpoint, tmp_path / "model.engine"), "engine"),
                          ((exports["fp32"], exports["fp16"], "--per-block"), "--per-block")]:
        result = _run("verify", *pair)
        assert result.exit_code == 2, (pair, result.output)
        assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, (pair, result.stderr)


def test_export_takes_the_parity_options(tmp_path):
    checkpoint = save_checkpoint(_model(), tmp_path / "m.pt")
    result = _run(checkpoint, "--mode", "recurrent", "--seq-len", "24", "--chunk-size", "8", "--json",
                  "--atol", "logits:1e-3", "--rtol", "1e-3", "--check-error-stat", "mean")
    assert result.exit_code == 0, result.output + result.stderr
    report = json.loads(result.stdout)
    tolerance = report["cases"][0]["outputs"][0]["tolerance"]
    assert (tolerance["atol"], tolerance["rtol"]) == (1e-3, 1e-3) and report["error_stat"] == "mean"
