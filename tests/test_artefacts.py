"""One table of file kinds: every command reads an engine suffix as an engine (`.trt` was a checkpoint to verify)."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from lion_export import create_model, save_checkpoint
from lion_export.artefacts import ENGINE_SUFFIXES, artefact_kind
from lion_export.cli import main

NOT_AN_ENGINE = b"\x00garbage, not a serialized TensorRT engine" * 4


@pytest.mark.parametrize("name, kind", [("m.engine", "engine"), ("m.plan", "engine"), ("m.trt", "engine"),
                                        ("M.TRT", "engine"), ("m.onnx", "onnx"), ("m.pt", "checkpoint"),
                                        ("m.safetensors", "checkpoint"), ("m.bin", "checkpoint")])
def test_kind_by_suffix(name, kind):
    assert artefact_kind(name) == kind


@pytest.mark.parametrize("name, kind", [("triton://127.0.0.1:8000/m", "served"), ("triton+grpc://h:8001/m/2", "served"),
                                        ("http://h:8000/m", "checkpoint"), ("triton.pt", "checkpoint")])
def test_served_models_by_url_scheme(name, kind):
    assert artefact_kind(name) == kind


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    model = create_model("encoder-tiny", depth=1, dim=16, num_heads=2, vocab_size=50, max_len=64)
    return save_checkpoint(model, tmp_path_factory.mktemp("artefacts") / "m.pt")


@pytest.mark.parametrize("suffix", ENGINE_SUFFIXES)
def test_verify_and_inspect_read_every_engine_suffix_as_an_engine(checkpoint, suffix):
    engine = checkpoint.with_name(f"x{suffix}")
    engine.write_bytes(NOT_AN_ENGINE)
    for args in (["verify", str(checkpoint), str(engine)], ["inspect", str(engine)]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, (args, result.output)
        assert f"{engine.name}: not a TensorRT engine" in result.output, (args, result.output)
        assert "both checkpoints" not in result.output
