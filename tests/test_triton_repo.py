"""`lion-export triton-repo`: every config it writes is parsed with Triton's own schema (ModelConfig from
tritonclient) and checked field by field against what the artefact is (names, dtypes and dims the model has, not
read back from the file), for the three backends, both graph forms, a checkpoint and engines. Refusals are one
line, exit 2, and leave nothing behind. No server here (tests/test_serve.py starts one)."""
from __future__ import annotations

import filecmp
import sys

import pytest
from click.testing import CliRunner
from google.protobuf import text_format

from engine_exports import MAX_LEN, TEXT, VISION, exported, model
from lion_export import save_checkpoint
from lion_export.cli import main
from lion_export.export.opsets import DEFAULT_OPSET

model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2",
                                       reason='needs tritonclient (pip install "lion-export[serve]")')
ModelConfig = model_config_pb2.ModelConfig
KIND = model_config_pb2.ModelInstanceGroup.Kind
PYTHON_MODEL = __import__("lion_export.serving.repository", fromlist=["PYTHON_MODEL"]).PYTHON_MODEL
# what each model is: text takes token ids and gives per-token logits over its vocabulary, vision takes 3x32x32
# fp32 images and gives one logit per class (the sizes engine_exports builds them with)
TEXT_IO = ([("input_ids", "TYPE_INT64", [-1]), ("attention_mask", "TYPE_INT64", [-1])],
           [("logits", "TYPE_FP32", [-1, TEXT["vocab_size"]])])
VISION_IO = ([("images", "TYPE_FP32", [3, VISION["img_size"], VISION["img_size"]])],
             [("logits", "TYPE_FP32", [VISION["num_classes"]])])


def cli(*args: str):
    return CliRunner().invoke(main, ["triton-repo", *map(str, args)])


def parse(path) -> ModelConfig:
    return text_format.Parse(path.read_text(), ModelConfig())


def io(config: ModelConfig) -> tuple[list, list]:
    def entries(values):
        return [(v.name, model_config_pb2.DataType.Name(v.data_type), list(v.dims)) for v in values]
    return entries(config.input), entries(config.output)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("triton-repo")
    return {"text_chunked": exported("text", "selective", "chunked"),
            "vision_recurrent": exported("vision", "decay", "recurrent"),
            "text_pt": save_checkpoint(model("text", "selective"), folder / "text.pt")}


@pytest.fixture(scope="module")
def engines(files, tmp_path_factory):
    """A chunked engine (no plugin: the tensorrt backend's) and a recurrent one binding the Python plugin."""
    pytest.importorskip("tensorrt_rtx_bindings", reason="needs TensorRT-RTX to build engines")
    from lion_export.engine.build import BuildOptions, build_engine

    folder = tmp_path_factory.mktemp("triton-engines")
    built = {}
    for name, onnx_path in (("chunked", files["text_chunked"]), ("plugin", exported("text", "selective",
                                                                                     "recurrent"))):
        built[name] = folder / f"{name}.engine"
        build_engine(onnx_path, built[name], BuildOptions(arch="sm_86"))
    return built


@pytest.fixture(scope="module")
def repo(files, tmp_path_factory):
    """One repository: both forms on onnxruntime, the .onnx and the checkpoint on python."""
    out = tmp_path_factory.mktemp("repos") / "repo"
    result = cli(files["text_chunked"], files["vision_recurrent"], "-o", out, "--name", "text_ort", "--name",
                 "vision_ort", "--backend", "onnxruntime")
    assert result.exit_code == 0, result.output
    python = cli(files["vision_recurrent"], files["text_pt"], "-o", out.with_name("python"), "--backend", "python",
                 "--name", "vision_py", "--name", "text_py")
    assert python.exit_code == 0, python.output
    return out, out.with_name("python"), result.output + python.output


def test_onnxruntime_models_for_both_forms(repo):
    out, _, output = repo
    for name, expected in (("text_ort", TEXT_IO), ("vision_ort", VISION_IO)):
        config = parse(out / name / "config.pbtxt")
        assert config.name == name and config.backend == "onnxruntime"
        assert io(config) == (expected[0], expected[1])
        assert config.max_batch_size == 8 and config.HasField("dynamic_batching")
        assert [(g.count, g.kind) for g in config.instance_group] == [(1, KIND.Value("KIND_CPU"))]
        assert sorted(p.name for p in (out / name / "1").iterdir()) == ["model.onnx"]
    assert f"opset {DEFAULT_OPSET}: needs onnxruntime >= 1.32" in output


def test_python_models_carry_the_artefact_and_model_py(repo, files):
    _, python, _ = repo
    for name, source, expected in (("vision_py", files["vision_recurrent"], VISION_IO),
                                   ("text_py", files["text_pt"], TEXT_IO)):
        config = parse(python / name / "config.pbtxt")
        assert config.backend == "python" and io(config) == expected
        assert config.parameters["artefact"].string_value == source.name
        assert filecmp.cmp(python / name / "1" / source.name, source, shallow=False)
        assert filecmp.cmp(python / name / "1" / "model.py", PYTHON_MODEL, shallow=False)


def test_batching_instances_threads_and_accelerator_options(files, tmp_path):
    out = tmp_path / "r"
    result = cli(files["text_chunked"], "-o", out, "--max-batch-size", "16", "--preferred-batch-sizes", "4,16",
                 "--max-queue-delay-us", "250", "--instances", "3", "--accelerator", "tensorrt", "--threads", "2")
    assert result.exit_code == 0, result.output
    config = parse(out / files["text_chunked"].stem / "config.pbtxt")
    assert config.max_batch_size == 16
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 16]
    assert config.dynamic_batching.max_queue_delay_microseconds == 250
    assert [(g.count, g.kind) for g in config.instance_group] == [(3, KIND.Value("KIND_GPU"))]
    assert [a.name for a in config.optimization.execution_accelerators.gpu_execution_accelerator] == ["tensorrt"]
    assert config.parameters["intra_op_thread_count"].string_value == "2"     # the onnxruntime backend's name

    unbatched = tmp_path / "u"
    assert cli(files["text_chunked"], "-o", unbatched, "--max-batch-size", "0").exit_code == 0
    config = parse(unbatched / files["text_chunked"].stem / "config.pbtxt")
    assert config.max_batch_size == 0 and not config.HasField("dynamic_batching")
    assert [list(i.dims) for i in config.input] == [[-1, -1], [-1, -1]]      # the batch axis is the file's own

    plain = tmp_path / "p"
    assert cli(files["text_chunked"], "-o", plain, "--no-dynamic-batching", "--kind", "gpu").exit_code == 0
    config = parse(plain / files["text_chunked"].stem / "config.pbtxt")
    assert config.max_batch_size == 8 and not config.HasField("dynamic_batching")


def test_a_static_export_is_not_batched(tmp_path):
    static = exported("text", "selective", "chunked", static=True)
    assert cli(static, "-o", tmp_path / "r").exit_code == 0
    config = parse(tmp_path / "r" / static.stem / "config.pbtxt")
    assert config.max_batch_size == 0 and [list(i.dims) for i in config.input] == [[2, 24], [2, 24]]
    refused = cli(static, "-o", tmp_path / "s", "--max-batch-size", "4")
    assert refused.exit_code == 2 and "first axis is static" in refused.output
    assert not (tmp_path / "s").exists()


def test_engines_tensorrt_backend_and_the_plugin_refusal(engines, tmp_path):
    out = tmp_path / "r"
    result = cli(engines["chunked"], engines["plugin"], "-o", out)   # defaults: tensorrt, then python for the plugin
    assert result.exit_code == 0, result.output
    trt = parse(out / "chunked" / "config.pbtxt")
    assert trt.platform == "tensorrt_plan" and io(trt) == TEXT_IO
    assert trt.max_batch_size == 8 and [g.kind for g in trt.instance_group] == [KIND.Value("KIND_GPU")]
    assert filecmp.cmp(out / "chunked" / "1" / "model.plan", engines["chunked"], shallow=False)
    python = parse(out / "plugin" / "config.pbtxt")
    assert python.backend == "python" and python.parameters["artefact"].string_value == "plugin.engine"
    assert "TensorRT-RTX" in result.output

    refused = cli(engines["plugin"], "-o", tmp_path / "t", "--backend", "tensorrt")
    assert refused.exit_code == 2 and not (tmp_path / "t").exists()
    line = refused.output.strip().splitlines()[-1]
    assert "lion::SelectiveScan plugin" in line and "--no-plugin" in line and "--backend python" in line
    too_big = cli(engines["chunked"], "-o", tmp_path / "t", "--max-batch-size", "9")
    assert too_big.exit_code == 2 and "profile's largest batch 8" in too_big.output


@pytest.mark.parametrize("args, message", [
    (["text_pt", "--backend", "onnxruntime"], "onnxruntime backend runs .onnx files"),
    (["text_pt", "--backend", "tensorrt"], "tensorrt backend runs engines"),
    (["text_chunked", "--preferred-batch-sizes", "9"], "exceed max_batch_size 8"),
    (["text_chunked", "--accelerator", "cuda", "--kind", "cpu"], "runs on a GPU"),
    (["text_chunked", "--backend", "python", "--accelerator", "cuda"], "not the python backend's"),
    (["text_chunked", "text_chunked"], "name them with --name"),
    (["text_chunked", "--name", "a", "--name", "b"], "2 model name(s) for 1 artefact"),
    (["text_chunked", "--name", "../x"], "not folder names"),
    (["text_chunked", "--backend", "keras"], "Invalid value for '--backend'"),
])
def test_refusals_exit_2_and_write_nothing(files, tmp_path, args, message):
    out = tmp_path / "new" / "repo"
    result = cli(*(files.get(a, a) for a in args), "-o", out)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "new").exists()


def test_an_existing_repository_is_replaced_only_when_asked(files, tmp_path):
    out = tmp_path / "repo"
    (out / "old").mkdir(parents=True)
    refused = cli(files["text_chunked"], "-o", out)
    assert refused.exit_code == 2 and "--overwrite" in refused.output
    assert sorted(p.name for p in out.iterdir()) == ["old"]
    assert cli(files["text_chunked"], "-o", out, "--overwrite").exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == [files["text_chunked"].stem]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]           # no staging folder left beside it


def test_an_engine_without_its_build_report_is_refused(engines, tmp_path):
    lone = tmp_path / "lone.engine"
    lone.write_bytes(engines["chunked"].read_bytes())
    result = cli(lone, "-o", tmp_path / "r")
    assert result.exit_code == 2 and "no build report" in result.output and not (tmp_path / "r").exists()


def test_a_missing_serving_package_names_the_extra(files, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tritonclient.grpc.model_config_pb2", None)    # as if not installed
    result = cli(files["text_chunked"], "-o", tmp_path / "r")
    assert result.exit_code == 2 and 'pip install "lion-export[serve]"' in result.output
    assert not (tmp_path / "r").exists()


def test_the_opset_note_names_the_oldest_onnxruntime():
    from lion_export.serving.opsets import opset_note

    assert "opset 19: needs onnxruntime >= 1.15" in opset_note(19)
    assert "newer than 1.22" in opset_note(25)
    assert MAX_LEN == 64        # the text model's bound that test_serve's inputs stay within
