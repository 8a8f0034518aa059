"""The runner interface: every backend (eager PyTorch, onnxruntime, later TensorRT) behind one small contract.

A runner is a context manager (entering loads / builds whatever the backend needs, leaving frees it) with one
method, `infer(feed) -> outputs`, mapping input names to numpy arrays and output names to numpy arrays. The
comparator only ever sees those dicts, so it needs no knowledge of any backend, and a backend's heavy imports
happen inside its runner's `activate`, never at import time.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class Runner(ABC):
    """Base class; subclasses implement `activate`, `deactivate` and `infer`."""

    name: str = "runner"

    def __init__(self) -> None:
        self.active = False

    def __enter__(self) -> "Runner":
        self.activate()
        self.active = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.active = False
        self.deactivate()

    @abstractmethod
    def activate(self) -> None:
        """Load the backend (import it, build the session / engine, copy the model)."""

    @abstractmethod
    def deactivate(self) -> None:
        """Release what `activate` built."""

    def describe(self) -> str:
        """What ran, for reports (backend name, version, settings)."""
        return self.name

    @abstractmethod
    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once on an already checked feed."""

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the backend on `feed` (input name -> array) and return output name -> array."""
        if not self.active:
            raise RuntimeError(f"{self.name}: infer() called outside the runner's `with` block")
        return self._infer(feed)


__all__ = ["Runner"]
