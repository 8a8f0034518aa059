"""What a runner accepts: the input signature (`InputSpec`) and the one check of a feed against it.

Every runner and `lion_export.load` check a feed here before anything runs, so a wrong name, rank, static size or
dtype kind is one clear `InputsError` (a ValueError) naming the input, never a backend's stack trace.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class InputsError(ValueError):
    """Inputs that cannot feed the graph (wrong names, ranks, shapes or dtypes; an unreadable inputs.npz)."""


@dataclass(frozen=True)
class InputSpec:
    """One graph input: name, numpy dtype, shape (an int per static axis, a name or None per dynamic one)."""

    name: str
    dtype: np.dtype
    shape: tuple[int | str | None, ...]

    def describe(self) -> str:
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name}: {self.dtype.name}[{dims}]"


def _value_specs(values, skip: set[str]) -> list[InputSpec]:
    """InputSpecs of onnx ValueInfoProtos (graph inputs or outputs), leaving out the names in `skip`."""
    from onnx.helper import tensor_dtype_to_np_dtype

    specs = []
    for value in values:
        if value.name in skip:
            continue
        tensor = value.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor.shape.dim)
        specs.append(InputSpec(value.name, np.dtype(tensor_dtype_to_np_dtype(tensor.elem_type)), dims))
    return specs


def graph_input_specs(model) -> list[InputSpec]:
    """The input signature of an onnx.ModelProto (initialisers listed as inputs by old exporters are skipped)."""
    return _value_specs(model.graph.input, {i.name for i in model.graph.initializer})


def graph_output_specs(model) -> list[InputSpec]:
    """The outputs of an onnx.ModelProto, described like its inputs."""
    return _value_specs(model.graph.output, set())


def check_feed(feed: dict[str, np.ndarray], specs: list[InputSpec], source: str) -> dict[str, np.ndarray]:
    """Check names, ranks, static axes, shared dynamic axes and dtype kinds; return the feed in the graph's dtypes."""
    expected = {s.name for s in specs}
    missing, extra = sorted(expected - feed.keys()), sorted(feed.keys() - expected)
    if missing or extra:
        raise InputsError(f"{source}: input names {sorted(feed)} do not match the graph's {sorted(expected)}"
                          + (f" (missing {missing})" if missing else "") + (f" (unexpected {extra})" if extra else ""))
    sizes: dict[str, tuple[int, str]] = {}
    checked = {}
    for spec in specs:
        array = np.asarray(feed[spec.name])
        if array.ndim != len(spec.shape):
            raise InputsError(f"{source}: {spec.name!r} has shape {array.shape}, the graph expects rank "
                              f"{len(spec.shape)} ({spec.describe()})")
        for axis, (dim, size) in enumerate(zip(spec.shape, array.shape)):
            if isinstance(dim, int) and dim != size:
                raise InputsError(f"{source}: {spec.name!r} has shape {array.shape}, the graph expects "
                                  f"{spec.describe()} (axis {axis} must be {dim})")
            if isinstance(dim, str):
                seen = sizes.setdefault(dim, (size, spec.name))
                if seen[0] != size:
                    raise InputsError(f"{source}: axis {dim!r} is {seen[0]} in {seen[1]!r} but {size} in "
                                      f"{spec.name!r}")
        # floats to floats (the graph's own precision) and integers to integers only: integer images given to a
        # float model are a mistake (unscaled pixels, the wrong array), not something to cast silently
        if (array.dtype.kind == "f") != (spec.dtype.kind == "f") or array.dtype.kind not in "fiub":
            raise InputsError(f"{source}: {spec.name!r} is {array.dtype.name}, the graph expects {spec.dtype.name}"
                              + (" (integers are not cast to a float input)" if spec.dtype.kind == "f" else ""))
        checked[spec.name] = array.astype(spec.dtype, copy=False)
    return checked


__all__ = ["InputSpec", "InputsError", "check_feed", "graph_input_specs", "graph_output_specs"]
