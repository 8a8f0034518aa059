"""One runner layer for every artefact, below verify/, bench/ and the application's `lion_export.load`.

`base.py` (the `Runner` contract), `feeds.py` (input signatures and the one feed check), `eager.py` (a model in
eager PyTorch), `onnx_runtime.py` (an .onnx file in onnxruntime), `trt_engine.py` (a TensorRT engine; it uses the
engine layer's `header` and `backend` only), `triton_client.py` (a model served by a Triton Inference Server),
`files.py` (the runner of a file or served model, by its kind) and `session.py`
(`load`: any artefact as a callable session with its inputs described and checked).
Nothing here imports verify/, bench/ or the CLI. Names are imported on first use (PEP 562), so reading a feed's
signature never pays for torch or onnxruntime.
"""
from __future__ import annotations

from lion_export.lazy_names import lazy_names

_EXPORTS = {
    "Runner": "base",
    "InputSpec": "feeds", "InputsError": "feeds", "check_feed": "feeds", "graph_input_specs": "feeds",
    "TorchRunner": "eager",
    "OnnxRuntimeRunner": "onnx_runtime", "ProviderError": "onnx_runtime", "SessionError": "onnx_runtime",
    "resolve_providers": "onnx_runtime",
    "TensorRTRunner": "trt_engine", "RunnerUnavailable": "trt_engine",
    "ArtefactError": "files", "file_runner": "files", "TritonClientRunner": "triton_client",
    "load": "session", "Session": "session", "TensorInfo": "session", "pad_token_ids": "session",
    "cast_images": "session",
}

__all__ = list(_EXPORTS)


__getattr__, __dir__ = lazy_names(__name__, globals(), _EXPORTS)
