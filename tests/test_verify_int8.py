"""Verification of INT8 QDQ files: each correct export passes against the fake-quantized model, a file whose
weights are not the checkpoint's fails, the task-level figures against the float model are right and judged only by
the thresholds given, file against file too, and a Q/DQ pair the reference cannot place is named.

The bundled digits model is the real case (calibrated on 64 training digits, verified on 200 others); the tiny
random models of the grid are calibrated on a few random batches, which is enough to set scales: the check
compares the file with a reference using those same scales, whatever data chose them.
"""
from __future__ import annotations

import copy
import json
from functools import partial
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner
from onnx import helper, numpy_helper

from lion_export.checkpoints import read_model
from lion_export.cli import main
from lion_export.export import export_onnx
from lion_export.models import create_model, set_form
from lion_export.quantize import quantize_npz, quantize_onnx
from lion_export.quantize.calibration import feeds_from_callable
from lion_export.quantize.selection import DECAY_GATES
from lion_export.verify import verify_onnx
from lion_export.verify.fake_quant import read_plan
from lion_export.verify.stress import spread_decays

DIGITS = Path(__file__).resolve().parents[1] / "examples" / "lion_s_digits.pt"
FORMS = ("chunked", "recurrent")
CHUNK = 8
NEGATED = "blocks.1.attn.proj.weight.T_quantized"     # the int8 weight the mutated file negates


def quantizable_layers(model: torch.nn.Module) -> int:
    """The Linear / Conv2d layers `quantize` rounds: all but the LION-S decay gates, which stay float."""
    return sum(isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)) and name.split(".")[-1] not in DECAY_GATES
               for name, m in model.named_modules())


def cli(*args) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


def run_file(path: Path, images: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"images": images})[0].astype(np.float64)


@pytest.fixture(scope="module")
def digits():
    datasets = pytest.importorskip("sklearn.datasets", reason="needs scikit-learn (the [examples] extra)")
    images = datasets.load_digits().images.astype(np.float32)[:, None]
    return (images - images.mean()) / images.std()


@pytest.fixture(scope="module")
def files(tmp_path_factory, digits):
    """The digits model, its float and INT8 exports in both forms, the mutated INT8 file and the test inputs."""
    folder = tmp_path_factory.mktemp("int8")
    model = read_model(DIGITS)
    np.savez(folder / "calibration.npz", **{f"case{i}/images": digits[16 * i:16 * (i + 1)] for i in range(4)})
    np.savez(folder / "test.npz", **{f"case{i}/images": digits[1000 + 100 * i:1100 + 100 * i] for i in range(2)})
    made = {"model": model, "test": folder / "test.npz", "images": digits[1000:1200]}
    for form in FORMS:
        export_onnx(model, folder / f"{form}.onnx", form=form, chunk_size=CHUNK)
        quantize_npz(folder / f"{form}.onnx", folder / f"{form}.int8.onnx", folder / "calibration.npz")
        made[form] = folder / f"{form}.int8.onnx"
    proto = onnx.load(made["recurrent"])
    weight = next(t for t in proto.graph.initializer if t.name == NEGATED)
    negated = -numpy_helper.to_array(weight).astype(np.int16)
    weight.CopyFrom(numpy_helper.from_array(negated.clip(-128, 127).astype(np.int8), NEGATED))
    onnx.save(proto, folder / "mutated.int8.onnx")
    made["mutated"] = folder / "mutated.int8.onnx"
    return made


def test_weights_round_as_the_file_stores_them(files):
    """Every linear layer but the decay gates is placed (weight and input; the output of the Conv only), and the
    checkpoint's weight rounded with the file's scales is the file's int8 weight (at most a tie rounds the other
    way, by one step)."""
    model, proto = files["model"], onnx.load(files["recurrent"])
    stored = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    plan = read_plan(proto, model)
    modules = dict(model.named_modules())
    assert len(plan) == quantizable_layers(model) == 10
    for layer in plan:
        conv = isinstance(modules[layer.module], torch.nn.Conv2d)
        assert layer.weight is not None and layer.input is not None and (layer.output is not None) == conv
        weight = modules[layer.module].weight.detach()
        transposed = weight.dim() == 2 and layer.module != "head"          # MatMul layers read W^T
        name = f"{layer.module}.weight{'.T' if transposed else ''}"
        scale = stored[f"{name}_scale"].reshape((1, -1) if transposed else (-1,) + (1,) * (weight.dim() - 1))
        file_weight = stored[f"{name}_quantized"].astype(np.float64) * scale
        rounded = layer.weight.apply(weight).numpy().astype(np.float64)
        rounded = rounded.T if transposed else rounded
        steps = np.abs(rounded - file_weight) / np.broadcast_to(scale, file_weight.shape)
        assert steps.max() <= 1.0 + 1e-4 and np.count_nonzero(steps > 0.5) <= 0.001 * steps.size


@pytest.mark.parametrize("form", FORMS)
def test_correct_int8_file_passes_and_reports_the_quantization_error(files, form):
    report = verify_onnx(files["model"], files[form], inputs=files["test"], progress=False)
    assert report.passed and report.error_stat == "mean"
    assert report.worst_headroom < 0.5                 # at least 2x below the bound (measured ~0.2)
    # the task-level figures, recomputed here from onnxruntime and the float model
    model = set_form(copy.deepcopy(files["model"]).double(), "parallel")
    with torch.inference_mode():
        float_logits = model(torch.from_numpy(files["images"]).double()).numpy()
    int8_logits = run_file(files[form], files["images"])
    (figures,) = report.task
    cosine = float(np.sum(float_logits * int8_logits) / np.linalg.norm(float_logits) / np.linalg.norm(int8_logits))
    assert figures.rows == 200 and figures.cosine == pytest.approx(cosine, abs=1e-6)
    assert figures.top1_agreement == pytest.approx(np.mean(float_logits.argmax(-1) == int8_logits.argmax(-1)))
    assert figures.max_abs_error == pytest.approx(np.abs(float_logits - int8_logits).max(), rel=1e-5)
    assert figures.top1_agreement >= 0.97 and figures.cosine > 0.99


def test_negated_weights_fail(files):
    passed = cli("verify", DIGITS, files["recurrent"], "--load-inputs", files["test"], "--quiet")
    assert passed.exit_code == 0, passed.output
    failed = cli("verify", DIGITS, files["mutated"], "--load-inputs", files["test"], "--quiet")
    assert failed.exit_code == 1 and "parity FAILED" in failed.output


def test_thresholds_make_the_figures_a_check(files, tmp_path):
    args = ("verify", DIGITS, files["chunked"], "--load-inputs", files["test"])
    met = cli(*args, "--min-cosine", 0.99, "--min-top1-agreement", 0.95, "--report", tmp_path / "r.json")
    assert met.exit_code == 0, met.output
    task = json.loads((tmp_path / "r.json").read_text())["task_figures"]
    assert task["against"].startswith("the float model") and task["outputs"][0]["rows"] == 200
    missed = cli(*args, "--min-cosine", 0.9999999)
    assert missed.exit_code == 1 and "below --min-cosine 0.9999999" in missed.output
    assert cli(*args, "--min-top1-agreement", 1.5).exit_code == 2


def test_file_against_file_reports_the_figures(files, tmp_path):
    float_file = files["recurrent"].with_name("recurrent.onnx")
    result = cli("verify", float_file, files["recurrent"], "--load-inputs", files["test"], "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["tolerance_method"] == "none" and report["passed"]
    (figures,) = report["task_figures"]["outputs"]
    expected, actual = run_file(float_file, files["images"]), run_file(files["recurrent"], files["images"])
    assert figures["top1_agreement"] == pytest.approx(np.mean(expected.argmax(-1) == actual.argmax(-1)))
    assert figures["max_abs_error"] == pytest.approx(np.abs(expected - actual).max(), rel=1e-6)
    mutated = cli("verify", float_file, files["mutated"], "--load-inputs", files["test"], "--min-top1-agreement",
                  0.9)
    assert mutated.exit_code == 1 and "below --min-top1-agreement 0.9" in mutated.output


def test_a_pair_the_reference_cannot_place_is_named(files, tmp_path):
    """A Q/DQ pair on the mixer's output (no linear layer's weight, input or output) is bad input, exit 2."""
    proto = onnx.load(files["recurrent"])
    scan = next(n for n in proto.graph.node if n.op_type == "SelectiveScan")
    tensor = scan.output[0]
    for node in proto.graph.node:
        node.input[:] = [f"{tensor}_dq" if name == tensor else name for name in node.input]
    proto.graph.initializer.extend([numpy_helper.from_array(np.array(0.05, np.float32), "mixer_scale"),
                                    numpy_helper.from_array(np.array(0, np.int8), "mixer_zero")])
    proto.graph.node.extend([helper.make_node("QuantizeLinear", [tensor, "mixer_scale", "mixer_zero"], [f"{tensor}_q"],
                                              name="mixer_q"),
                             helper.make_node("DequantizeLinear", [f"{tensor}_q", "mixer_scale", "mixer_zero"],
                                              [f"{tensor}_dq"], name="mixer_dq")])
    onnx.save(proto, tmp_path / "odd.int8.onnx")
    result = cli("verify", DIGITS, tmp_path / "odd.int8.onnx", "--load-inputs", files["test"])
    assert result.exit_code == 2 and f"cannot place the Q/DQ pair on tensor '{tensor}'" in result.output


def test_a_view_between_a_pair_and_its_layer_is_seen_through(files, tmp_path):
    """A Flatten between the classifier's input Q/DQ pair and its Gemm (a placement that reshapes for a 2-D
    kernel) moves no value: the pair is still the layer's input, and the file passes."""
    proto = onnx.load(files["recurrent"])
    index, gemm = next((i, n) for i, n in enumerate(proto.graph.node) if n.op_type == "Gemm")
    proto.graph.node.insert(index, helper.make_node("Flatten", [gemm.input[0]], ["head_input_flat"], axis=1,
                                                    name="head_flatten"))
    gemm.input[0] = "head_input_flat"
    onnx.save(proto, tmp_path / "view.int8.onnx")
    plan = read_plan(onnx.load(tmp_path / "view.int8.onnx"), files["model"])
    assert next(layer for layer in plan if layer.module == "head").input is not None
    assert verify_onnx(files["model"], tmp_path / "view.int8.onnx", inputs=files["test"], progress=False).passed


TEXT = {"depth": 2, "dim": 16, "num_heads": 2, "vocab_size": 50, "max_len": 64}
VISION = {"depth": 2, "dim": 16, "num_heads": 2, "img_size": 32, "patch_size": 8, "num_classes": 5,
          "pos_embed": False}
GRID = [("text", "selective", "recurrent"), ("text", "selective", "chunked"), ("vision", "lit", "recurrent"),
        ("vision", "decay", "recurrent")]


def _random_batches(kind: str):
    rng = np.random.default_rng(0)
    for _ in range(4):
        yield ({"images": rng.standard_normal((4, 3, 32, 32)).astype(np.float32)} if kind == "vision" else
               {"input_ids": rng.integers(0, TEXT["vocab_size"], (4, 24)),
                "attention_mask": np.ones((4, 24), np.int64)})


@pytest.mark.parametrize("kind, mask, form", GRID)
def test_grid_of_int8_exports_passes(tmp_path, kind, mask, form):
    """Text (post-norm: a rounded LayerNorm output feeds both q/k/v and the residual) and vision, both forms,
    the three variants."""
    torch.manual_seed(0)
    preset, config = ("encoder-tiny", TEXT) if kind == "text" else ("vit-tiny", VISION)
    model = spread_decays(create_model(preset, mask=mask, **config).eval())
    export_onnx(model, tmp_path / "m.onnx", form=form, chunk_size=CHUNK, seq_len=24 if kind == "text" else None)
    quantize_onnx(tmp_path / "m.onnx", tmp_path / "m.int8.onnx", partial(feeds_from_callable,
                                                                           partial(_random_batches, kind)))
    report = verify_onnx(model, tmp_path / "m.int8.onnx", seq_lens=[19], progress=False)
    assert report.passed and report.worst_headroom < 0.5
    assert len(read_plan(onnx.load(tmp_path / "m.int8.onnx"), model)) == quantizable_layers(model)
    (figures,) = report.task
    assert figures.cosine > 0.99
