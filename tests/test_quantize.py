"""lion-export quantize: which layers get Q/DQ (the same in both forms, never the chunked mixer), the rules TensorRT
needs (per-channel weights, float biases, opset 19), accuracy on real digits, and every refusal."""
from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "lion_s_digits.pt"
FORMS = ("chunked", "recurrent")
LINEAR_LAYERS = 10      # patch Conv, per block (2): qkv, projection, 2 MLP layers; the classifier Gemm
QUANTIZE_NODES = 11     # one per layer input (the image included), and the patch Conv's output


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lion_export.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT)


@pytest.fixture(scope="module")
def digits():
    """Normalised digits as examples/digits.py feeds them: (images, labels)."""
    datasets = pytest.importorskip("sklearn.datasets", reason="needs scikit-learn (the [examples] extra)")
    data = datasets.load_digits()
    images = data.images.astype(np.float32)[:, None]
    return (images - images.mean()) / images.std(), data.target


@pytest.fixture(scope="module")
def files(tmp_path_factory, digits):
    """The bundled digits model exported in both forms, a calibration npz of 64 digits, and both INT8 files."""
    folder = tmp_path_factory.mktemp("quantize")
    images, _ = digits
    calibration = folder / "calibration.npz"
    np.savez(calibration, **{f"case{i}/images": images[16 * i:16 * (i + 1)] for i in range(4)})
    made = {"calibration": calibration}
    for form in FORMS:
        exported = cli("export", DIGITS, "--mode", form, "--chunk-size", 8, "-o", folder / f"{form}.onnx",
                       "--no-verify", "--quiet")
        assert exported.returncode == 0, exported.stderr
        quantized = cli("quantize", folder / f"{form}.onnx", "--calibration", calibration)
        assert quantized.returncode == 0, quantized.stderr
        assert f"{LINEAR_LAYERS} linear layers" in quantized.stdout
        made[form] = folder / f"{form}.int8.onnx"
    half = cli("export", DIGITS, "--mode", "recurrent", "--dtype", "fp16", "-o", folder / "fp16.onnx", "--no-verify",
               "--quiet")
    assert half.returncode == 0, half.stderr
    made["fp16"] = folder / "fp16.onnx"
    return made


@pytest.mark.parametrize("form", FORMS)
def test_only_the_linear_layers_are_quantized(files, form):
    model = onnx.load(files[form])
    weights = {init.name: init for init in model.graph.initializer}
    dequantized_weights = [node for node in model.graph.node if node.op_type == "DequantizeLinear"
                           and weights.get(node.input[0]) is not None
                           and weights[node.input[0]].data_type == onnx.TensorProto.INT8]
    assert len(dequantized_weights) == LINEAR_LAYERS          # the chunked mixer's MatMuls read no weight: not here
    for node in dequantized_weights:                          # per-channel: one scale per output channel
        assert len(weights[node.input[1]].dims) == 1 and weights[node.input[1]].dims[0] > 1
    assert not [init for init in model.graph.initializer if init.data_type == onnx.TensorProto.INT32]  # no int bias
    zero_points = [onnx.numpy_helper.to_array(weights[n.input[2]]) for n in model.graph.node
                   if n.op_type == "QuantizeLinear"]
    assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points)   # symmetric activations
    assert {op.domain: op.version for op in model.opset_import}[""] == 19
    counts = Counter(node.op_type for node in model.graph.node)
    assert counts["LayerNormalization"] == 5 and counts["QuantizeLinear"] == QUANTIZE_NODES
    if form == "recurrent":
        assert counts["SelectiveScan"] == 2 and [f.name for f in model.functions] == ["SelectiveScan"]


@pytest.mark.parametrize("form", FORMS)
def test_each_activation_pair_feeds_one_linear_layer(files, form):
    """Q/DQ only where a linear layer reads: a pair per layer input, the Conv's output pair, float MatMul / Gemm
    outputs, the decay gates (and the mixer) untouched."""
    model = onnx.load(files[form])
    weights = {init.name for init in model.graph.initializer}
    producer = {out: node for node in model.graph.node for out in node.output}
    readers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    activation_pairs = [node for node in model.graph.node
                        if node.op_type == "QuantizeLinear" and node.input[0] not in weights]
    read_by = Counter()
    for quantize in activation_pairs:
        (dequantize,) = readers[quantize.output[0]]
        assert dequantize.op_type == "DequantizeLinear"
        source = producer.get(quantize.input[0])
        if source is not None and source.op_type == "Conv":
            continue                                    # the patch embedding's output pair, read by a Reshape
        (layer,) = readers[dequantize.output[0]]
        assert layer.op_type in ("Conv", "MatMul", "Gemm") and layer.input[0] == dequantize.output[0]
        read_by[layer.op_type] += 1
    assert read_by == {"Conv": 1, "MatMul": 8, "Gemm": 1}
    gates = [node for node in model.graph.node if node.op_type == "MatMul"
             and any(".a_i." in name for reader in readers[node.output[0]] for name in reader.input)]
    assert len(gates) == 2 and not any(producer.get(n.input[0], n).op_type == "DequantizeLinear" for n in gates)


@pytest.mark.parametrize("form", FORMS)
def test_onnxruntime_fuses_every_linear_layer(files, tmp_path, form):
    """The point of the placement: onnxruntime's CPU optimizer turns each block layer into an integer kernel, and
    no float MatMul is left reading a DequantizeLinear."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(files[form]), options, providers=["CPUExecutionProvider"])
    optimized = onnx.load(tmp_path / "optimized.onnx")
    producer = {out: node for node in optimized.graph.node for out in node.output}
    counts = Counter(node.op_type for node in optimized.graph.node)
    assert counts["MatMulIntegerToFloat"] == 8 and counts["QLinearConv"] == 1
    assert not [node for node in optimized.graph.node if node.op_type in ("MatMul", "FusedMatMul")
                and any(producer.get(name) is not None and producer[name].op_type == "DequantizeLinear"
                        for name in node.input)]


@pytest.mark.parametrize("form", FORMS)
def test_int8_accuracy_within_a_point_of_fp32(files, digits, form):
    import onnxruntime as ort

    images, labels = digits
    accuracy = {}
    for name, path in (("fp32", files[form].with_name(f"{form}.onnx")), ("int8", files[form])):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        accuracy[name] = (session.run(None, {"images": images})[0].argmax(-1) == labels).mean()
    assert accuracy["fp32"] > 0.95
    assert abs(accuracy["int8"] - accuracy["fp32"]) <= 0.01


def test_refusals_exit_2_and_write_nothing(files, tmp_path):
    chunked, calibration = files["chunked"].with_name("chunked.onnx"), files["calibration"]
    np.savez(tmp_path / "wrong.npz", pixels=np.zeros((2, 1, 8, 8), np.float32))
    np.savez(tmp_path / "empty.npz", images=np.zeros((0, 1, 8, 8), np.float32))
    out = tmp_path / "out.onnx"
    cases = {
        "give --calibration": (chunked,),
        "already quantized": (files["chunked"], "--calibration", calibration),
        "the graph is fp16": (files["fp16"], "--calibration", calibration),
        "do not match the graph": (chunked, "--calibration", tmp_path / "wrong.npz"),
        "calibration set is empty": (chunked, "--calibration", tmp_path / "empty.npz"),
        "no block [7]": (chunked, "--calibration", calibration, "--exclude-blocks", "7"),
        "'Add' is not one of": (chunked, "--calibration", calibration, "--op-types", "Add"),
        "no linear layer": (chunked, "--calibration", calibration, "--op-types", "MatMul", "--exclude-blocks", "0,1"),
    }
    for message, args in cases.items():
        result = cli("quantize", *args, "-o", out)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.npz", "wrong.npz"]     # nothing written


def test_shared_block_scales_give_every_block_the_widest_scale_and_keep_accuracy(files, digits, tmp_path):
    """--shared-block-scales: each block's activation pair of one role (same tensor name, block prefix aside) takes
    the largest scale any block calibrated for it; pairs outside the blocks and the weights' scales keep theirs;
    the accuracy stays within a point of fp32."""
    import onnxruntime as ort
    from onnx import numpy_helper

    fp32 = files["recurrent"].with_name("recurrent.onnx")
    result = cli("quantize", fp32, "--calibration", files["calibration"], "-o", tmp_path / "shared.onnx",
                 "--shared-block-scales")
    assert result.returncode == 0, result.stderr
    assert "4 activation scales shared by every block" in result.stdout     # qkv, projection, fc1, fc2 inputs

    def scales(path):
        model = onnx.load(path)
        return {init.name: numpy_helper.to_array(init) for init in model.graph.initializer
                if init.name.endswith("_scale")}

    exact, shared = scales(files["recurrent"]), scales(tmp_path / "shared.onnx")
    assert exact.keys() == shared.keys()
    roles = {name.removeprefix("blocks.0.") for name in exact if name.startswith("blocks.0.") and "weight" not in name}
    assert len(roles) == 4
    for role in roles:
        widest = max(exact[f"blocks.{block}.{role}"] for block in (0, 1))
        assert shared[f"blocks.0.{role}"] == shared[f"blocks.1.{role}"] == widest
    for name in exact.keys() - {f"blocks.{block}.{role}" for block in (0, 1) for role in roles}:
        np.testing.assert_array_equal(shared[name], exact[name], err_msg=name)
    images, labels = digits
    accuracy = [(ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": images})[0]
                 .argmax(-1) == labels).mean() for path in (tmp_path / "shared.onnx", fp32)]
    assert abs(accuracy[0] - accuracy[1]) <= 0.01


def test_excluded_block_stays_float(files, tmp_path):
    result = cli("quantize", files["recurrent"].with_name("recurrent.onnx"), "--calibration", files["calibration"],
                 "-o", tmp_path / "x.onnx", "--exclude-blocks", "1", "--method", "percentile")
    assert result.returncode == 0, result.stderr
    assert "6 linear layers" in result.stdout          # 10 minus block 1's four
    assert len(result.stdout.splitlines()) == 1         # the calibrator's own prints stay off stdout
    assert not [n for n in onnx.load(tmp_path / "x.onnx").graph.node
                if n.op_type == "DequantizeLinear" and n.name.startswith("blocks.1.")]


def test_python_api_calibrates_on_a_callable_and_checks_its_feeds(files, digits, tmp_path):
    from functools import partial

    from lion_export.quantize import quantize_onnx
    from lion_export.quantize.calibration import CalibrationError, feeds_from_callable

    images, _ = digits
    source = files["chunked"].with_name("chunked.onnx")

    def batches():
        return ({"images": images[start:start + 32]} for start in range(0, 96, 32))

    result = quantize_onnx(source, tmp_path / "api.onnx", partial(feeds_from_callable, batches))
    assert (result.layers, result.quantize_nodes) == (LINEAR_LAYERS, QUANTIZE_NODES)
    assert result.calibration.startswith("3 batches (96 rows)")
    with pytest.raises(CalibrationError, match="empty"):
        quantize_onnx(source, tmp_path / "none.onnx", partial(feeds_from_callable, lambda: []))
    with pytest.raises(CalibrationError, match="images"):
        quantize_onnx(source, tmp_path / "ints.onnx",
                      partial(feeds_from_callable, lambda: [{"images": np.zeros((2, 1, 8, 8), np.int64)}]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["api.onnx"]


def test_output_may_not_be_the_input(files):
    source = files["recurrent"].with_name("recurrent.onnx")
    before = source.read_bytes()
    result = cli("quantize", source, "--calibration", files["calibration"], "-o", source)
    assert result.returncode == 2 and "is the input file" in result.stderr
    assert source.read_bytes() == before


def test_export_dtype_int8_exports_verifies_then_quantizes(files, tmp_path):
    """export --dtype int8: the fp32 file, verified as ever, and its INT8 file beside it, as `quantize` writes it."""
    out = tmp_path / "digits.onnx"
    result = cli("export", DIGITS, "--mode", "recurrent", "--chunk-size", 8, "-o", out, "--dtype", "int8",
                 "--calibration", files["calibration"], "--quiet")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"wrote {out}; parity PASSED"
    assert lines[1].startswith(f"wrote {out.with_suffix('.int8.onnx')} (INT8 QDQ") and len(lines) == 2
    assert f"{LINEAR_LAYERS} linear layers" in lines[1]
    for name in ("digits.onnx", "digits.int8.onnx"):
        assert onnx.load(tmp_path / name).metadata_props          # lion-export files, metadata kept
    assert sum(n.op_type == "QuantizeLinear" for n in onnx.load(tmp_path / "digits.int8.onnx").graph.node) \
        == QUANTIZE_NODES
    for args, message in ((("--dtype", "int8"), "needs --calibration"),
                          (("--calibration", files["calibration"]), "goes with --dtype int8")):
        refused = cli("export", DIGITS, "-o", tmp_path / "refused.onnx", *args)
        assert refused.returncode == 2 and message in refused.stderr and "Traceback" not in refused.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits.int8.onnx", "digits.onnx"]


@pytest.mark.parametrize("preset,config", [
    ("encoder-tiny", {"depth": 2, "dim": 16, "num_heads": 2, "vocab_size": 50, "max_len": 64}),          # Wa_i
    ("vit-tiny", {"depth": 1, "dim": 16, "num_heads": 2, "img_size": 32, "patch_size": 8, "num_classes": 5,
                  "natural": True}),                                                                   # a_i, a2_i
])
def test_decay_gates_are_found_in_every_model_kind(tmp_path, preset, config):
    """The decay-gate layers left in float are exactly the model's Linear decay parameters, one node each."""
    import torch

    from lion_export import create_model
    from lion_export.export import export_onnx
    from lion_export.quantize.selection import DECAY_GATES, decay_gates, linear_layers

    torch.manual_seed(0)
    model = create_model(preset, mask="selective", **config)
    gate_modules = [name for name, module in model.named_modules()
                    if isinstance(module, torch.nn.Linear) and name.rsplit(".", 1)[-1] in DECAY_GATES]
    graph = onnx.load(export_onnx(model, tmp_path / "m.onnx", form="recurrent",
                                  seq_len=24 if preset.startswith("encoder") else None))
    gates = decay_gates(graph)
    assert len(gates) == len(gate_modules) == 2
    layers = linear_layers(graph)
    linear_modules = [m for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    assert not gates & set(layers) and len(layers) == len(linear_modules) - len(gate_modules)
