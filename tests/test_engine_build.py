"""Real TensorRT-RTX engines from tiny exports (no GPU needed to build): every LION variant in both model kinds,
both dtypes and both engine-worthy modes, through `build_engine` and the `lion-export build` command.

The matrix covers each (variant, mode, dtype) once across the two model kinds: text builds chunked fp32 and
recurrent fp16, vision builds chunked fp16 and recurrent fp32. Engines are checked from the outside: the header
(edition, version, targets) of the file written, the build report, and the network's layers: the recurrent file
holds exactly one plugin layer per mixer when the plugin binds, none with --no-plugin (its scan becomes TensorRT
loops instead), and the chunked file none at all.
"""
from __future__ import annotations

import json
from functools import partial

import pytest
from click.testing import CliRunner

from engine_exports import exported
from lion_export.cli import main
from lion_export.engine.backend import load_backend
from lion_export.engine.build import RTX_PLUGIN_WARNING, BuildOptions, build_engine
from lion_export.build_record import BuildRecordError, build_record_path, int8_source
from lion_export.checkpoints import checkpoint_sha256
from lion_export.engine.header import read_engine_header
from lion_export.engine.profiles import AxisRange, ProfileOptions

pytest.importorskip("tensorrt_rtx_bindings",
                    reason='needs TensorRT-RTX (pip install "lion-export[tensorrt-rtx]") to build engines')

CASES = [(kind, mask, mode, dtype)
         for mask in ("lit", "decay", "selective")
         for kind, plan in (("text", (("chunked", "fp32"), ("recurrent", "fp16"))),
                            ("vision", (("chunked", "fp16"), ("recurrent", "fp32"))))
         for mode, dtype in plan]
ARCH = "sm_86,sm_120"


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    """Build each case once on first use: {case: (engine path, report)}."""
    root = tmp_path_factory.mktemp("engines")
    built = {}

    def get(case, use_plugin=True):
        key = (*case, use_plugin)
        if key not in built:
            onnx_path = exported(*case[:4], pos_embed=case[1] != "decay")
            engine = root / f"{'-'.join(case)}{'' if use_plugin else '-inlined'}.engine"
            built[key] = engine, build_engine(onnx_path, engine, BuildOptions(arch=ARCH, use_plugin=use_plugin))
        return built[key]
    return get


@pytest.mark.parametrize("case", CASES, ids=["-".join(c) for c in CASES])
def test_every_variant_kind_mode_and_dtype_builds(engines, case):
    kind, mask, mode, dtype = case
    engine, report = engines(case)
    header = read_engine_header(engine)
    backend = load_backend()
    assert header.edition == backend.edition == report.backend == "TensorRT-RTX"
    assert header.version == backend.version == report.version
    assert header.targets == report.arch == ["sm_86", "sm_120"]
    assert header.file_bytes == header.engine_bytes == report.engine_bytes > 0
    assert report.mode == mode and report.dtype == dtype
    assert report.scan_nodes == (1 if mode == "recurrent" else 0)       # depth-1 models: one mixer
    assert report.plugin_layers == report.scan_nodes
    assert report.layers_by_type.get("PLUGIN_V3", 0) == report.scan_nodes
    assert sum(report.layers_by_type.values()) == report.network_layers
    on_disk = json.loads(build_record_path(engine).read_text())
    assert on_disk == json.loads(json.dumps(report.to_dict()))
    assert set(on_disk) >= {"backend", "version", "network_layers", "plugin_layers", "layers_by_type",
                            "engine_bytes", "build_seconds", "profiles", "arch"}


INLINED = [("text", "lit", "recurrent", "fp16"), ("vision", "decay", "recurrent", "fp32"),
           ("text", "selective", "recurrent", "fp16")]


@pytest.mark.parametrize("case", INLINED, ids=["-".join(c) for c in INLINED])
def test_no_plugin_builds_the_inlined_scan_as_loops(engines, case):
    _engine, report = engines(case, use_plugin=False)
    assert report.plugin_layers == 0 and "PLUGIN_V3" not in report.layers_by_type
    assert report.layers_by_type.get("LOOP_OUTPUT", 0) > 0           # the local function's Scan, as TensorRT loops
    assert report.plugin == "inlined local function (--no-plugin)"


def test_plugin_engine_is_smaller_and_has_fewer_layers_than_the_inlined_one(engines):
    case = ("vision", "selective", "recurrent", "fp32")
    (_, with_plugin), (_, inlined) = engines(case), engines(case, use_plugin=False)
    assert with_plugin.network_layers < inlined.network_layers
    assert with_plugin.engine_bytes < inlined.engine_bytes


def test_build_command_prints_backend_targets_layers_and_writes_the_report(tmp_path):
    onnx_path = exported("text", "lit", "recurrent", "fp16")
    engine, report_path = tmp_path / "out" / "m.engine", tmp_path / "r.json"
    result = CliRunner().invoke(main, ["build", str(onnx_path), "-o", str(engine), "--batch", "1,2,4",
                                       "--seq-len", "4,24,48", "--arch", "sm_89", "--report", str(report_path)])
    assert result.exit_code == 0, result.output + result.stderr
    assert "TensorRT-RTX 1." in result.stdout and "targets: sm_89" in result.stdout
    assert "1 plugin layers (scan: lion::SelectiveScan v1)" in result.stdout and "PLUGIN_V3" in result.stdout
    assert "profile input_ids: min 1x4, opt 2x24, max 4x48" in result.stdout
    assert "Building engine" in result.stderr                         # a line per phase (not a terminal)
    warning = [line for line in result.stderr.splitlines() if line.startswith("lion-export: warning:")]
    assert warning == [f"lion-export: warning: {RTX_PLUGIN_WARNING}"]  # a plugin engine built by TensorRT-RTX
    report = json.loads(report_path.read_text())
    assert report["profiles"]["attention_mask"] == {"min": [1, 4], "opt": [2, 24], "max": [4, 48]}
    assert read_engine_header(engine).targets == ["sm_89"]
    assert not build_record_path(engine).exists()                     # --report chose another place

    shown = CliRunner().invoke(main, ["inspect", str(engine), "--json"])
    assert shown.exit_code == 0
    summary = json.loads(shown.stdout)
    assert summary["header"]["targets"] == ["sm_89"] and summary["build_report"] is None


def test_default_build_targets_every_fp32_target_and_profiles_from_the_file(tmp_path):
    onnx_path = exported("vision", "decay", "recurrent", "fp32", pos_embed=False)
    engine = tmp_path / "v.engine"
    report = build_engine(onnx_path, engine, BuildOptions(
        profiles=ProfileOptions(batch=AxisRange(1, 1, 2))))
    assert report.arch == ["sm_80", "sm_86", "sm_89", "sm_120", "sm_121"]
    assert read_engine_header(engine).targets == report.arch
    # images: one patch .. the traced 32x32 .. twice the model's 32 px
    assert report.profiles["images"] == {"min": [1, 3, 8, 8], "opt": [1, 3, 32, 32], "max": [2, 3, 64, 64]}
    shown = CliRunner().invoke(main, ["inspect", str(engine)])
    assert shown.exit_code == 0
    assert "sm_120 (Blackwell" in shown.stdout and "build report: recurrent fp32" in shown.stdout


def test_one_command_export_verify_build(tmp_path):
    """`lion-export model.pt --mode recurrent --engine`: export, parity check, then the engine beside the file."""
    from engine_exports import model
    from lion_export import save_checkpoint

    checkpoint = save_checkpoint(model("text", "selective"), tmp_path / "model.pt")
    result = CliRunner().invoke(main, [str(checkpoint), "--mode", "recurrent", "--seq-len", "16", "--engine",
                                       "--quiet"])
    assert result.exit_code == 0, result.output + result.stderr
    lines = result.stdout.strip().splitlines()
    assert "--no-plugin or export the chunked form" in result.stderr     # said even with --quiet
    assert lines[0].endswith("parity PASSED") and lines[1].startswith(f"wrote {tmp_path / 'model.engine'}")
    report = json.loads((tmp_path / "model.build.json").read_text())
    assert report["mode"] == "recurrent" and report["plugin_layers"] == report["scan_nodes"] == 1
    assert read_engine_header(tmp_path / "model.engine").targets == ["sm_80", "sm_86", "sm_89", "sm_120", "sm_121"]


def test_one_command_int8_export_builds_the_int8_engine(tmp_path):
    """`lion-export model.pt --dtype int8 --calibration DATA --engine`: the fp32 export verified, its INT8 QDQ file,
    and TensorRT-RTX's strongly typed engine of that file, whose Q/DQ nodes become QUANTIZE / DEQUANTIZE layers."""
    import numpy as np
    import onnx

    from engine_exports import model
    from lion_export import save_checkpoint

    checkpoint = save_checkpoint(model("vision", "selective"), tmp_path / "vit.pt")
    rng = np.random.default_rng(0)          # a test's stand-in for real images: the engine's layers, not accuracy
    np.savez(tmp_path / "calibration.npz", **{f"case{i}/images": rng.standard_normal((4, 3, 32, 32), np.float32)
                                              for i in range(2)})
    result = CliRunner().invoke(main, [str(checkpoint), "--mode", "chunked", "--dtype", "int8", "--calibration",
                                       str(tmp_path / "calibration.npz"), "--engine", "--quiet"])
    assert result.exit_code == 0, result.output + result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].endswith("parity PASSED") and "(INT8 QDQ, opset 19" in lines[1]
    assert lines[2].startswith(f"wrote {tmp_path / 'vit.int8.engine'}") and len(lines) == 3
    quantized = onnx.load(tmp_path / "vit.int8.onnx")
    report = json.loads((tmp_path / "vit.int8.build.json").read_text())
    assert report["dtype"] == "int8" and report["mode"] == "chunked"
    assert report["layers_by_type"]["QUANTIZE"] == sum(n.op_type == "QuantizeLinear" for n in quantized.graph.node)
    assert report["layers_by_type"]["DEQUANTIZE"] == sum(n.op_type == "DequantizeLinear"
                                                         for n in quantized.graph.node)
    assert report["onnx_sha256"] == checkpoint_sha256(tmp_path / "vit.int8.onnx")


@pytest.fixture(scope="module")
def int8_engine(tmp_path_factory):
    """A tiny INT8 engine (recurrent form, calibrated on random images), its INT8 source and its checkpoint."""
    import numpy as np

    from engine_exports import model
    from lion_export import save_checkpoint
    from lion_export.quantize import quantize_onnx
    from lion_export.quantize.calibration import feeds_from_callable

    folder = tmp_path_factory.mktemp("int8-engine")
    checkpoint = save_checkpoint(model("vision", "selective"), folder / "vit.pt")
    rng = np.random.default_rng(0)
    images = [{"images": rng.standard_normal((4, 3, 32, 32), np.float32)} for _ in range(2)]
    source = quantize_onnx(exported("vision", "selective", "recurrent"), folder / "vit.int8.onnx",
                           partial(feeds_from_callable, lambda: images)).path
    build_engine(source, folder / "vit.int8.engine", BuildOptions(arch="sm_89"))
    return folder / "vit.int8.engine", source, checkpoint


def test_shared_block_scales_make_the_int8_engine_smaller(tmp_path):
    """Blocks whose activation scales differ are compiled once each (docs/quantization.md): two blocks quantized
    with their own calibrated scales cost a block's code more than with scales the blocks share (measured: 0.26 MiB
    on this model; TensorRT-RTX 1.7)."""
    import numpy as np

    from engine_exports import model
    from lion_export.export import export_onnx
    from lion_export.quantize import QuantizeOptions, quantize_onnx
    from lion_export.quantize.calibration import feeds_from_callable

    fp32 = export_onnx(model("vision", "selective", depth=2), tmp_path / "two.onnx", form="recurrent")
    rng = np.random.default_rng(0)
    images = [{"images": rng.standard_normal((4, 3, 32, 32), np.float32)} for _ in range(2)]
    sizes = {}
    for shared in (False, True):
        source = quantize_onnx(fp32, tmp_path / f"two-{shared}.int8.onnx", partial(feeds_from_callable, lambda: images),
                               QuantizeOptions(shared_block_scales=shared)).path
        sizes[shared] = build_engine(source, source.with_suffix(".engine"), BuildOptions(arch="sm_89")).engine_bytes
    assert sizes[False] - sizes[True] > 0.2 * 2**20, sizes


def test_int8_engine_is_verified_against_its_source_files_fake_quantized_model(int8_engine, engines, monkeypatch):
    """The build record names the INT8 source and its sha256: verify reads the scales there and holds the engine
    to the INT8 reference and bound. Engines cannot run here, so onnxruntime runs the source in the engine's place
    (the engine itself: tests/test_engine_gpu.py): it passes that way, and fails the float bound that applies once
    the record is gone. A float engine has no INT8 source."""
    from lion_export.checkpoints import read_model
    from lion_export.runners import OnnxRuntimeRunner
    from lion_export.verify import parity, verify_onnx

    engine, source, checkpoint = int8_engine
    assert int8_source(engine) == source
    runs = []
    monkeypatch.setattr(parity, "file_runner", lambda path, **_: runs.append(path) or OnnxRuntimeRunner(source))
    model = read_model(checkpoint)
    report = verify_onnx(model, engine, batch=1, progress=False)
    assert runs == [engine] and report.passed and report.error_stat == "mean"
    assert any(note.startswith("INT8 QDQ file vit.int8.onnx, the build record's source of this engine: the "
                               "reference is the model fake-quantized") for note in report.notes)
    assert report.task and 0.9 < report.task[0].cosine < 1       # quantization error against the float model
    record = build_record_path(engine).read_bytes()
    build_record_path(engine).unlink()
    try:
        assert not verify_onnx(model, engine, batch=1, progress=False).passed
    finally:
        build_record_path(engine).write_bytes(record)
    float_engine, report = engines(("vision", "lit", "chunked", "fp16"))
    assert report.dtype == "fp16" and int8_source(float_engine) is None


def test_int8_engine_finds_its_source_beside_it_and_refuses_a_changed_one(int8_engine, tmp_path):
    """Moved together, engine, record and source still match; a source rewritten since the build, or gone, is one
    line and exit 2 (its scales may not be the engine's), never a float bound on an INT8 engine."""
    import shutil

    engine, source, checkpoint = int8_engine
    for path in (engine, build_record_path(engine), source):
        shutil.copy(path, tmp_path / path.name)
    moved = tmp_path / engine.name
    record = json.loads(build_record_path(moved).read_text())
    build_record_path(moved).write_text(json.dumps({**record, "onnx": "elsewhere/vit.int8.onnx"}))
    assert int8_source(moved) == tmp_path / "vit.int8.onnx"
    (tmp_path / "vit.int8.onnx").write_bytes(source.read_bytes() + b"\0")
    with pytest.raises(BuildRecordError, match="needed for its reference"):
        int8_source(moved)
    result = CliRunner().invoke(main, ["verify", str(checkpoint), str(moved)])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "built from the INT8 file elsewhere/vit.int8.onnx" in result.stderr
