"""Engines run on a GPU and match eager PyTorch: every variant, chunked and recurrent (the plugin's enqueue
launching the Triton scan), fp32 and fp16, through TensorRTRunner. Skipped, with the precise reason, where the
machine cannot run an engine: no CUDA GPU, no TensorRT, or a GPU the installed TensorRT does not target (an H200 is
sm_90: TensorRT-RTX has no sm_90 target, so it needs standard TensorRT). Never run in CI (no GPU there).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engine_exports import TRACE_LEN, exported, model
from lion_export.models import set_form
from lion_export.verify import TorchRunner, tolerance_for


def _why_not_runnable() -> str | None:
    if not torch.cuda.is_available():
        return "needs a CUDA GPU"
    from lion_export.engine.backend import BackendError, load_backend
    from lion_export.engine.rtx_targets import TARGETS

    try:
        backend = load_backend()
    except BackendError as exc:
        return f"needs TensorRT on this GPU machine: {exc}"
    major, minor = torch.cuda.get_device_capability()
    here = f"sm_{major}{minor}"
    if backend.is_rtx and here not in TARGETS:
        return (f"needs standard TensorRT: this GPU ({torch.cuda.get_device_name()}) is {here}, which "
                f"{backend.describe()} does not target")
    return None


REASON = _why_not_runnable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")
CASES = [(mask, mode, dtype) for mask in ("lit", "decay", "selective") for mode in ("chunked", "recurrent")
         for dtype in ("fp32", "fp16")]


def _arch() -> str | None:
    from lion_export.engine.backend import load_backend

    major, minor = torch.cuda.get_device_capability()
    return f"sm_{major}{minor}" if load_backend().is_rtx else None


@pytest.mark.parametrize("mask,mode,dtype", CASES)
def test_engine_matches_eager_pytorch(tmp_path, mask, mode, dtype):
    from lion_export.engine.build import BuildOptions, build_engine
    from lion_export.runners.trt_engine import TensorRTRunner

    engine = tmp_path / "m.engine"
    report = build_engine(exported("text", mask, mode, dtype), engine, BuildOptions(arch=_arch()))
    assert report.plugin_layers == (1 if mode == "recurrent" else 0)
    rng = np.random.default_rng(0)
    for batch, length in ((2, TRACE_LEN), (1, 7), (3, 61)):     # the trace, shorter than a chunk, not a multiple
        feed = {"input_ids": rng.integers(0, 50, size=(batch, length)).astype(np.int64),
                "attention_mask": np.ones((batch, length), dtype=np.int64)}
        with TensorRTRunner(engine) as runner:
            got = runner.infer(feed)
        reference = TorchRunner(model("text", mask), ["input_ids", "attention_mask"], ["logits"],
                                prepare=lambda m: set_form(m, "parallel"))
        with reference:
            want = reference.infer(feed)
        bound = tolerance_for(dtype)
        np.testing.assert_allclose(got["logits"].astype(np.float64), want["logits"], atol=bound.atol,
                                   rtol=bound.rtol, err_msg=f"{mask} {mode} {dtype} B={batch} L={length}")


def test_int8_engine_passes_against_its_fake_quantized_reference(tmp_path):
    """An INT8 engine, verified as its build record says: against the model fake-quantized with its source file's
    scales, with the INT8 bound (tests/test_engine_build.py checks that choice where no engine can run)."""
    from functools import partial

    from lion_export.engine.build import BuildOptions, build_engine
    from lion_export.quantize import quantize_onnx
    from lion_export.quantize.calibration import feeds_from_callable
    from lion_export.verify import verify_onnx

    rng = np.random.default_rng(0)
    images = [{"images": rng.standard_normal((4, 3, 32, 32), np.float32)} for _ in range(2)]
    source = quantize_onnx(exported("vision", "selective", "chunked"), tmp_path / "vit.int8.onnx",
                           partial(feeds_from_callable, lambda: images)).path
    engine = tmp_path / "vit.int8.engine"
    build_engine(source, engine, BuildOptions(arch=_arch()))
    report = verify_onnx(model("vision", "selective"), engine, progress=False)
    assert report.passed and any("the build record's source of this engine" in note for note in report.notes)
