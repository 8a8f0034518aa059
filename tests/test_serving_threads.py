"""The repository option that sets onnxruntime's threads per model instance (ServingOptions.threads): written as
the python backend's own parameter (model.py passes it to lion_export.load) or the onnxruntime backend's
`intra_op_thread_count`, in a config Triton's schema parses; refused where no onnxruntime runs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tritonclient.grpc.model_config_pb2",
                    reason='needs tritonclient (pip install "lion-export[serve]")')

from lion_export.runners.feeds import InputSpec  # noqa: E402
from lion_export.serving.model_config import ServingOptions, config_text, model_config  # noqa: E402
from lion_export.serving.signature import ArtefactSignature  # noqa: E402

SIGNATURE = ArtefactSignature(Path("digits.onnx"), "onnx",
                              (InputSpec("images", np.dtype(np.float32), ("batch", 1, 8, 8)),),
                              (InputSpec("logits", np.dtype(np.float32), ("batch", 10)),))


@pytest.mark.parametrize("backend, parameter", [("python", "threads"), ("onnxruntime", "intra_op_thread_count")])
def test_threads_are_the_backends_own_parameter(backend: str, parameter: str) -> None:
    from google.protobuf import text_format
    from tritonclient.grpc.model_config_pb2 import ModelConfig

    config = model_config("digits", SIGNATURE, ServingOptions(threads=1), backend,
                          "digits.onnx" if backend == "python" else None)
    parsed = text_format.Parse(config_text(config), ModelConfig())
    assert parsed.parameters[parameter].string_value == "1"
    default = model_config("digits", SIGNATURE, ServingOptions(), backend)
    assert parameter not in default.parameters


def test_threads_are_refused_where_no_onnxruntime_runs() -> None:
    with pytest.raises(ValueError, match="threads must be >= 1"):
        model_config("digits", SIGNATURE, ServingOptions(threads=0), "python", "digits.onnx")
    engine = ArtefactSignature(Path("digits.engine"), "engine", SIGNATURE.inputs, SIGNATURE.outputs, max_batch=8)
    with pytest.raises(ValueError, match="which the tensorrt backend does not run"):
        model_config("digits", engine, ServingOptions(threads=1), "tensorrt")
