"""onnxruntime behind the runner interface (CPU by default); onnxruntime is imported only on `activate`.

Like the other runners, it feeds each floating input in the dtype the file declares (an fp16 file takes fp16 images
where its fp32 twin takes fp32 ones), so two files compare on the same values; integer inputs pass as they are.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import Runner

OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")
FLOAT_TYPES = {"tensor(float)": np.dtype(np.float32), "tensor(float16)": np.dtype(np.float16),
               "tensor(double)": np.dtype(np.float64)}
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}


class SessionError(ValueError):
    """onnxruntime refused to load the file (an unknown op, an invalid graph): the file is the problem."""


class ProviderError(ValueError):
    """An execution provider this onnxruntime installation does not have (e.g. CUDA without onnxruntime-gpu)."""


def resolve_providers(names: str | list[str] | tuple[str, ...], *, check_available: bool = True) -> tuple[str, ...]:
    """"cpu,cuda" (short or full names) -> ("CPUExecutionProvider", "CUDAExecutionProvider"), each one checked
    against what this onnxruntime build offers, so a missing GPU build is one clear error, not a silent CPU run.
    check_available=False checks the names only (a session that reports its fallback instead of refusing)."""
    import onnxruntime as ort

    parts = [p.strip() for p in (names.split(",") if isinstance(names, str) else names) if p.strip()]
    if not parts:
        raise ProviderError(f"no onnxruntime provider given; choose from {', '.join(PROVIDERS)}")
    full = {v.lower(): v for v in PROVIDERS.values()}
    wanted = []
    for part in parts:
        name = PROVIDERS.get(part.lower()) or full.get(part.lower())
        if name is None:
            raise ProviderError(f"unknown onnxruntime provider {part!r}; choose from {', '.join(PROVIDERS)}")
        wanted.append(name)
    available = ort.get_available_providers()
    missing = [n for n in wanted if n not in available]
    if missing and check_available:
        hint = " (install onnxruntime-gpu for CUDA / TensorRT)" if set(missing) - {"CPUExecutionProvider"} else ""
        raise ProviderError(f"onnxruntime {ort.__version__} here lacks {', '.join(missing)}; it has "
                            f"{', '.join(available)}{hint}")
    return tuple(dict.fromkeys(wanted))


class OnnxRuntimeRunner(Runner):
    """An InferenceSession over an .onnx file.

    optimization: onnxruntime's graph optimisation level; "disable" runs the file exactly as written (used to prove
    that the custom nodes' local functions, not a fused rewrite, give the right answer).
    allow_fallback: a requested provider that does not start (onnxruntime then runs on the CPU) is a line in
    `warnings` instead of a ProviderError: verify refuses such a run, an application may accept it, knowingly.
    flush_denormals: treat denormal floats as zero (LION-S decay products reach the denormal range, where x86 CPUs
    slow down 10-50x); for timing the model (bench), not for parity, which keeps IEEE arithmetic.
    """

    name = "onnxruntime"

    def __init__(self, onnx_path: str | Path, *, optimization: str = "all",
                 providers: tuple[str, ...] = ("CPUExecutionProvider",), threads: int | None = None,
                 allow_fallback: bool = False, flush_denormals: bool = False) -> None:
        super().__init__()
        if optimization not in OPTIMIZATION_LEVELS:
            raise ValueError(f"optimization must be one of {OPTIMIZATION_LEVELS}, got {optimization!r}")
        self.onnx_path = Path(onnx_path)
        self.optimization = optimization
        self.providers = providers
        self.threads = threads
        self.allow_fallback = allow_fallback
        self.flush_denormals = flush_denormals
        self.warnings: list[str] = []
        self.session = None
        self._float_inputs: dict[str, np.dtype] = {}

    def activate(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[self.optimization]
        if self.threads is not None:
            options.intra_op_num_threads = self.threads
        if self.flush_denormals:
            options.add_session_config_entry("session.set_denormal_as_zero", "1")
        options.log_severity_level = 4   # fatal only: a failed run is reported by verify itself, not by ORT logs
        try:
            self.session = ort.InferenceSession(str(self.onnx_path), options, providers=list(self.providers))
        except Exception as exc:  # noqa: BLE001 - onnxruntime's own error classes (Fail, InvalidGraph, ...)
            message = " ".join(str(exc).split())[:300]
            raise SessionError(f"onnxruntime cannot load {self.onnx_path}: {message}") from None
        inactive = [p for p in self.providers if p not in self.session.get_providers()]
        if inactive:     # onnxruntime falls back to the CPU silently when a GPU provider fails to start
            message = (f"onnxruntime could not start {', '.join(inactive)} for {self.onnx_path} "
                       f"(running {', '.join(self.session.get_providers())})")
            if not self.allow_fallback:
                raise ProviderError(message)
            self.warnings = [message]
        self._float_inputs = {i.name: FLOAT_TYPES[i.type] for i in self.session.get_inputs() if i.type in FLOAT_TYPES}

    def deactivate(self) -> None:
        self.session = None
        self._float_inputs = {}

    def describe(self) -> str:
        import onnxruntime as ort

        return f"onnxruntime {ort.__version__} ({', '.join(self.providers)}, optimisation {self.optimization})"

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self.session.get_outputs()]
        return dict(zip(names, self.session.run(names, {k: self._cast(k, v) for k, v in feed.items()})))

    def _cast(self, name: str, array: np.ndarray) -> np.ndarray:
        """A floating input in the file's own float dtype; anything else unchanged."""
        array = np.asarray(array)
        wanted = self._float_inputs.get(name)
        return array.astype(wanted, copy=False) if wanted is not None and array.dtype.kind == "f" else array


__all__ = ["OnnxRuntimeRunner", "OPTIMIZATION_LEVELS", "PROVIDERS", "ProviderError", "SessionError",
           "resolve_providers"]
