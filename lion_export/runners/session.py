"""`lion_export.load`: any artefact (a checkpoint, an .onnx file, a TensorRT engine) as one callable session.

An application should not have to redo what verify already knows: the input names and dtypes, the shapes a file
or an engine's profile accepts, the plugin an engine needs before it is deserialized, which onnxruntime provider
really runs. A Session holds the artefact's runner (runners/), describes its inputs and outputs, and checks every
feed against them (feeds.check_feed, then the axis ranges) before anything runs, so a wrong input is one
ValueError naming it. `pad_token_ids` and `cast_images` make the two kinds of feed the models take.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..artefacts import SERVED, artefact_kind
from .base import Runner
from .feeds import InputSpec, InputsError, check_feed


@dataclass(frozen=True)
class TensorInfo:
    """One input or output: name, dtype, shape (a static size, or the dynamic axis's name / None) and, per axis,
    the smallest and largest size accepted (None: no bound known, e.g. an onnx batch axis)."""

    name: str
    dtype: np.dtype
    shape: tuple[int | str | None, ...]
    min_shape: tuple[int, ...]
    max_shape: tuple[int | None, ...]

    @classmethod
    def from_spec(cls, spec: InputSpec, low: Sequence[int] | None = None,
                  high: Sequence[int | None] | None = None) -> "TensorInfo":
        """A spec with its bounds: given ones (an engine's profile, a model's limits), else static sizes or 1.."""
        low = tuple(low) if low is not None else tuple(d if isinstance(d, int) else 1 for d in spec.shape)
        high = tuple(high) if high is not None else tuple(d if isinstance(d, int) else None for d in spec.shape)
        return cls(spec.name, spec.dtype, spec.shape, low, high)

    def spec(self) -> InputSpec:
        return InputSpec(self.name, self.dtype, self.shape)

    def check_range(self, shape: tuple[int, ...], source: str) -> None:
        """InputsError when an axis lies outside [min, max]."""
        for axis, (low, size, high) in enumerate(zip(self.min_shape, shape, self.max_shape)):
            if size < low or (high is not None and size > high):
                highs = "x".join("?" if h is None else str(h) for h in self.max_shape)
                bounds = f"{'x'.join(map(str, self.min_shape))} .. {highs}"
                raise InputsError(f"{source}: {self.name!r} has shape {shape}; axis {axis} must lie in "
                                  f"[{low}, {'any' if high is None else high}] (accepted: {bounds})")


class Session:
    """A loaded artefact: `session(inputs) -> {output name: numpy array}`; close it (or use `with`) to free it."""

    def __init__(self, path: Path, runner: Runner, inputs: list[TensorInfo], outputs: list[TensorInfo]) -> None:
        self.path = path
        self.runner = runner
        self.inputs = inputs
        self.outputs = outputs
        runner.__enter__()

    @property
    def providers(self) -> tuple[str, ...]:
        """What runs the artefact: onnxruntime's active providers, else the runner's description."""
        session = getattr(self.runner, "session", None)
        return tuple(session.get_providers()) if session is not None else (self.runner.describe(),)

    @property
    def warnings(self) -> list[str]:
        """What did not go as asked but still runs (a GPU provider that fell back to the CPU)."""
        return list(getattr(self.runner, "warnings", []))

    def feed(self, inputs: Mapping[str, Any] | Any) -> dict[str, np.ndarray]:
        """The checked feed: a dict (or the one array of a one-input model) of numpy arrays or torch tensors, in
        the dtypes the artefact takes; InputsError (a ValueError) on a wrong name, dtype, rank or size."""
        if not isinstance(inputs, Mapping):
            if len(self.inputs) != 1:
                raise InputsError(f"{self.path}: takes {len(self.inputs)} inputs "
                                  f"({', '.join(i.name for i in self.inputs)}): pass a dict by name")
            inputs = {self.inputs[0].name: inputs}
        arrays = {name: _numpy(value) for name, value in inputs.items()}
        checked = check_feed(arrays, [i.spec() for i in self.inputs], str(self.path))
        for info in self.inputs:
            info.check_range(checked[info.name].shape, str(self.path))
        return checked

    def __call__(self, inputs: Mapping[str, Any] | Any) -> dict[str, np.ndarray]:
        return self.runner.infer(self.feed(inputs))

    def close(self) -> None:
        if self.runner.active:
            self.runner.__exit__(None, None, None)

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        described = ", ".join(i.spec().describe() for i in self.inputs)
        return f"Session({self.path.name}: {described} on {', '.join(self.providers)})"


def _numpy(value: Any) -> np.ndarray:
    """A numpy view of an array or a torch tensor (any device), without importing torch."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _checkpoint_session(path: Path, read_options: Any, form: str | None, dtype: Any) -> Session:
    """A checkpoint in eager PyTorch, with the names and axes its export would have."""
    import torch

    from ..checkpoints import ReadOptions, read_model
    from ..export.signature import graph_signature
    from ..models import set_form
    from .eager import TorchRunner

    model = read_model(path, read_options or ReadOptions())
    dtype = dtype or torch.float32
    signature = graph_signature(model, batch=2, seq_len=None, dtype=dtype, static=False)
    inputs = []
    for name, example, axes in zip(signature.input_names, signature.example_inputs, signature.dynamic_shapes):
        shape = tuple(axes[i].__name__ if i in axes else n for i, n in enumerate(example.shape))
        high = tuple(_dim_max(axes[i]) if i in axes else n for i, n in enumerate(example.shape))
        spec = InputSpec(name, np.dtype(str(example.dtype).removeprefix("torch.")), shape)
        inputs.append(TensorInfo.from_spec(spec, high=high))
    outputs = [TensorInfo.from_spec(InputSpec(name, np.dtype(str(dtype).removeprefix("torch.")), dims))
               for name, dims in zip(signature.output_names, signature.output_dims)]
    prepare = (lambda m: set_form(m, form)) if form else None
    runner = TorchRunner(model, list(signature.input_names), list(signature.output_names), compute_dtype=dtype,
                         prepare=prepare)
    return Session(path, runner, inputs, outputs)


def _dim_max(dim: Any) -> int | None:
    """A torch.export.Dim's upper bound, None when unbounded (its default is a huge sentinel)."""
    high = getattr(dim, "max", None)
    return high if isinstance(high, int) and high < 2**31 else None


def _onnx_session(path: Path, providers: str | Sequence[str], optimization: str, threads: int | None) -> Session:
    """An .onnx file in onnxruntime; a requested provider that does not start is a warning, not hidden."""
    from ..graph_summary import load_onnx_model
    from .feeds import graph_input_specs, graph_output_specs
    from .onnx_runtime import OnnxRuntimeRunner, resolve_providers

    model = load_onnx_model(path)
    wanted = resolve_providers(providers, check_available=False)
    runner = OnnxRuntimeRunner(path, optimization=optimization, providers=wanted, threads=threads,
                               allow_fallback=True)
    return Session(path, runner, [TensorInfo.from_spec(s) for s in graph_input_specs(model)],
                   [TensorInfo.from_spec(s) for s in graph_output_specs(model)])


def _engine_session(path: Path) -> Session:
    """A TensorRT engine: the runner registers the plugin itself; the profile bounds each input."""
    from .files import engine_runner

    runner = engine_runner(path)
    session = Session(path, runner, [], [])
    session.inputs = [TensorInfo.from_spec(spec, *runner.profile_range(spec.name)) for spec in runner.input_specs()]
    session.outputs = [TensorInfo.from_spec(spec) for spec in runner.output_specs()]
    return session


def _served_session(url: str) -> Session:
    """A model on a Triton Inference Server: the server describes its inputs and outputs (the batch axis is
    bounded by the model's max_batch_size only per request: the runner splits a larger batch)."""
    from .triton_client import TritonClientRunner

    runner = TritonClientRunner(url)
    session = Session(Path(runner.served.model), runner, [], [])
    session.inputs = [TensorInfo.from_spec(spec) for spec in runner.input_specs()]
    session.outputs = [TensorInfo.from_spec(spec) for spec in runner.output_specs()]
    return session


def load(path: str | Path, *, providers: str | Sequence[str] = "cpu", optimization: str = "all",
         threads: int | None = None, form: str | None = None, dtype: Any = None,
         read_options: Any = None) -> Session:
    """Open `path` as a Session, by its kind: a checkpoint (eager PyTorch; `form`, `dtype` (default float32),
    `read_options`), an .onnx file (onnxruntime; `providers` such as "cuda,cpu", `optimization`, `threads`) or a
    TensorRT engine (needs a CUDA GPU; the plugin is registered before the engine is deserialized); a string
    triton://HOST:PORT/MODEL (or triton+grpc://) is a model served by a Triton Inference Server."""
    if artefact_kind(path) == SERVED:
        return _served_session(str(path))
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    kind = artefact_kind(path)
    if kind == "onnx":
        return _onnx_session(path, providers, optimization, threads)
    if kind == "engine":
        return _engine_session(path)
    return _checkpoint_session(path, read_options, form, dtype)


def pad_token_ids(sequences: Sequence[Sequence[int]], pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A batch of token-id lists -> (input_ids, attention_mask), both (B, longest) int64, padded at the end with
    `pad_id` and 0: the feed a text encoder's `input_ids` and `attention_mask` take."""
    if not sequences or any(len(row) == 0 for row in sequences):
        raise ValueError("pad_token_ids needs at least one sequence, and no empty sequence")
    width = max(len(row) for row in sequences)
    input_ids = np.full((len(sequences), width), pad_id, dtype=np.int64)
    attention_mask = np.zeros((len(sequences), width), dtype=np.int64)
    for row, ids in enumerate(sequences):
        input_ids[row, :len(ids)] = ids
        attention_mask[row, :len(ids)] = 1
    return input_ids, attention_mask


def cast_images(session: Session, images: Any) -> np.ndarray:
    """Images (numpy or torch, any float dtype) in the float dtype the session's image input takes (an fp16 vision
    file takes fp16 images); InputsError for a session without one float input or for integer pixels."""
    floats = [i for i in session.inputs if i.dtype.kind == "f"]
    if len(floats) != 1:
        raise InputsError(f"{session.path}: cast_images needs a model with one float (image) input")
    array = _numpy(images)
    if array.dtype.kind != "f":
        raise InputsError(f"{session.path}: images are {array.dtype.name}; scale integer pixels to floats first")
    return array.astype(floats[0].dtype, copy=False)


__all__ = ["Session", "TensorInfo", "load", "pad_token_ids", "cast_images"]
