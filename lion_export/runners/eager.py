"""Eager PyTorch behind the runner interface: the reference every export is judged against.

The runner works on a deep copy of the model (the caller's module is never cast or switched to another form),
cast to `compute_dtype` (float64 by default, so the reference's own rounding is negligible next to the export's).
Floating inputs are cast to that dtype, integer inputs (token ids, masks) are passed as they are, all on the
model's device. Inputs are passed positionally in the order of `input_names`, the order the exporter traced them in.
"""
from __future__ import annotations

import copy
from typing import Callable

import numpy as np
import torch

from .base import Runner


class TorchRunner(Runner):
    """model(*inputs) on a private copy; `prepare` (e.g. switch to the parallel form) runs on that copy."""

    name = "pytorch"

    def __init__(self, model: torch.nn.Module, input_names: list[str], output_names: list[str], *,
                 compute_dtype: torch.dtype = torch.float64,
                 prepare: Callable[[torch.nn.Module], None] | None = None) -> None:
        super().__init__()
        self.model = model
        self.input_names = list(input_names)
        self.output_names = list(output_names)
        self.compute_dtype = compute_dtype
        self.prepare = prepare
        self._copy: torch.nn.Module | None = None
        self._device = torch.device("cpu")

    def activate(self) -> None:
        model = copy.deepcopy(self.model).to(self.compute_dtype).eval()
        if self.prepare is not None:
            self.prepare(model)
        self._copy = model
        self._device = next(model.parameters(), torch.empty(0)).device

    def deactivate(self) -> None:
        self._copy = None

    def describe(self) -> str:
        where = "" if self._device.type == "cpu" else f", {self._device}"
        return f"pytorch {torch.__version__} ({str(self.compute_dtype).removeprefix('torch.')}{where})"

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(array)).to(self._device)
        return tensor.to(self.compute_dtype) if tensor.is_floating_point() else tensor

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [n for n in self.input_names if n not in feed]
        if missing:
            raise ValueError(f"feed lacks input(s) {missing}; expected {self.input_names}")
        with torch.inference_mode():
            out = self._copy(*(self._tensor(feed[n]) for n in self.input_names))
        outputs = list(out) if isinstance(out, (tuple, list)) else [out]
        if len(outputs) != len(self.output_names):
            raise ValueError(f"the model returned {len(outputs)} output(s), the graph has {len(self.output_names)}: "
                             f"{self.output_names}")
        return {n: t.detach().cpu().numpy() for n, t in zip(self.output_names, outputs)}


__all__ = ["TorchRunner"]
