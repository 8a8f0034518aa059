"""A serialized TensorRT engine behind the runner interface (lion_export/runners/base.py).

`TensorRTRunner(engine_path)`: `activate` checks what the engine needs before touching TensorRT (a CUDA GPU, the
edition and version that built it, a GPU among its TensorRT-RTX targets), registers the `lion::SelectiveScan`
plugin (an engine records the plugin by name only, so it must be registered before deserializing), deserializes
the engine and makes one execution context and stream. `infer` sets the input shapes of each call, places inputs
and outputs in torch CUDA tensors (device buffers with no extra CUDA binding), binds their addresses and
executes on the stream. What is missing is a RunnerUnavailable: one line saying exactly what.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..engine.header import EngineFileError, EngineHeader, read_engine_header
from ..engine.rtx_targets import TARGETS
from .base import Runner
from .feeds import InputSpec, InputsError, check_feed

NO_GPU = "needs a CUDA GPU to run a TensorRT engine; this machine has none"


class RunnerUnavailable(ValueError):
    """This machine cannot run the engine (no GPU, another TensorRT, a GPU the engine was not built for)."""


def _torch_dtype(trt, data_type):
    import torch

    table = {"FLOAT": torch.float32, "HALF": torch.float16, "BF16": torch.bfloat16, "INT64": torch.int64,
             "INT32": torch.int32, "INT8": torch.int8, "UINT8": torch.uint8, "BOOL": torch.bool}
    name = data_type.name
    if name not in table:
        raise RunnerUnavailable(f"engine tensors of type {name} are not supported by this runner")
    return table[name]


def _check_machine(header: EngineHeader):
    """The backend to run `header`'s engine with, or RunnerUnavailable naming what this machine lacks: the
    TensorRT that built it first (true with or without a GPU), then a CUDA GPU, then one among its targets."""
    import torch

    from ..engine.backend import BackendError, load_backend

    try:
        backend = load_backend()
    except BackendError as exc:
        raise RunnerUnavailable(f"{header.path} was built by {header.edition} {header.version}; {exc}") from None
    built_by = header.version.split(".")[:3]
    if backend.edition != header.edition or backend.version.split(".")[:3] != built_by:
        raise RunnerUnavailable(f"{header.path} was built by {header.edition} {header.version}; this machine has "
                                f"{backend.describe()}: rebuild it here with `lion-export build`")
    if not torch.cuda.is_available():
        raise RunnerUnavailable(NO_GPU)
    if header.is_rtx:
        major, minor = torch.cuda.get_device_capability()
        here = f"sm_{major}{minor}"
        if here not in header.targets:
            raise RunnerUnavailable(f"{header.path} targets {', '.join(header.targets)}; this GPU "
                                    f"({torch.cuda.get_device_name()}) is {here}"
                                    + (f": rebuild with --arch {here}" if here in TARGETS else
                                       ", which TensorRT-RTX does not target: use standard TensorRT"))
    return backend


class TensorRTRunner(Runner):
    """A TensorRT engine file; the engine's single optimization profile bounds the shapes it accepts."""

    name = "tensorrt"

    def __init__(self, engine_path: str | Path) -> None:
        super().__init__()
        self.engine_path = Path(engine_path)
        self.header: EngineHeader | None = None
        self.backend = None
        self.engine = None
        self.context = None
        self.stream = None

    def activate(self) -> None:
        import torch

        from ..engine.backend import collecting_logger, register_plugin

        self.header = read_engine_header(self.engine_path)
        self.backend = _check_machine(self.header)
        trt = self.backend.module
        register_plugin(self.backend, for_parsing=False)
        logger = collecting_logger(trt, None)
        runtime = trt.Runtime(logger)
        self.engine = runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self.engine is None:
            reason = logger.errors[-1] if logger.errors else "no reason logged"
            raise EngineFileError(f"{self.engine_path}: {self.backend.describe()} cannot deserialize it: {reason}")
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream()
        self._runtime = runtime

    def deactivate(self) -> None:
        self.context = self.engine = self.stream = self._runtime = None

    def describe(self) -> str:
        import torch

        backend = self.backend.describe() if self.backend is not None else "TensorRT"
        device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
        return f"{backend} engine {self.engine_path.name} on {device}"

    def _io_names(self, mode_name: str) -> list[str]:
        trt = self.backend.module
        mode = getattr(trt.TensorIOMode, mode_name)
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        return [n for n in names if self.engine.get_tensor_mode(n) == mode]

    def _specs(self, mode_name: str) -> list[InputSpec]:
        trt = self.backend.module
        specs = []
        for name in self._io_names(mode_name):
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
            shape = tuple(None if d < 0 else int(d) for d in self.engine.get_tensor_shape(name))
            specs.append(InputSpec(name, dtype, shape))
        return specs

    def input_specs(self) -> list[InputSpec]:
        """The engine's inputs as InputSpecs (dynamic axes as None), for check_feed and verify's load_inputs."""
        return self._specs("INPUT")

    def output_specs(self) -> list[InputSpec]:
        """The engine's outputs, described like its inputs."""
        return self._specs("OUTPUT")

    def profile_range(self, name: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The smallest and largest shape the engine's profile accepts for input `name`."""
        low, _opt, high = (tuple(int(n) for n in s) for s in self.engine.get_tensor_profile_shape(name, 0))
        return low, high

    def _check_profile(self, feed: dict[str, np.ndarray]) -> None:
        for name, array in feed.items():
            low, high = self.profile_range(name)
            if len(low) != array.ndim or any(not lo <= n <= hi for lo, n, hi in zip(low, array.shape, high)):
                raise InputsError(f"{name!r} has shape {tuple(array.shape)}; this engine was built for "
                                  f"{'x'.join(map(str, low))} .. {'x'.join(map(str, high))} (rebuild with wider "
                                  "--batch / --seq-len / --image-size)")

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        trt = self.backend.module
        feed = check_feed(feed, self.input_specs(), str(self.engine_path))
        self._check_profile(feed)
        device = torch.device("cuda")
        keep = {}
        for name, array in feed.items():
            tensor = torch.from_numpy(np.ascontiguousarray(array)).to(device)
            tensor = tensor.to(_torch_dtype(trt, self.engine.get_tensor_dtype(name))).contiguous()
            if not self.context.set_input_shape(name, tuple(tensor.shape)):
                raise InputsError(f"{self.engine_path}: TensorRT refused the shape {tuple(tensor.shape)} "
                                  f"for {name!r}")
            self.context.set_tensor_address(name, tensor.data_ptr())
            keep[name] = tensor
        outputs = {}
        for name in self._io_names("OUTPUT"):
            shape = tuple(self.context.get_tensor_shape(name))
            tensor = torch.empty(shape, dtype=_torch_dtype(trt, self.engine.get_tensor_dtype(name)), device=device)
            self.context.set_tensor_address(name, tensor.data_ptr())
            outputs[name] = tensor
        torch.cuda.current_stream().synchronize()        # the inputs' copies ran on the default stream
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise RuntimeError(f"{self.engine_path}: TensorRT failed to enqueue the engine")
        self.stream.synchronize()
        return {name: tensor.cpu().numpy() for name, tensor in outputs.items()}


def output_lines(results: dict[str, np.ndarray]) -> list[str]:
    """One line per output of a run: dtype, shape, min, max and mean (what `lion-export run` prints)."""
    lines = []
    for name, array in results.items():
        values = array.astype(np.float64)
        lines.append(f"{name}: {array.dtype.name}{list(array.shape)} min {values.min():.4g} max {values.max():.4g} "
                     f"mean {values.mean():.4g}")
    return lines


__all__ = ["TensorRTRunner", "RunnerUnavailable", "NO_GPU", "output_lines"]
