"""Task-level figures: how far a quantized file's outputs are from the float model's, in the terms a user of the
model judges by: cosine similarity, top-1 agreement and the largest logit error.

Parity (parity.py) asks whether a file computes what its reference computes; an INT8 file's reference is the
fake-quantized model (fake_quant.py), so parity says nothing about what quantization itself cost. These figures
do: they compare the file with the float model (or, file against file, with the first file) on the same inputs,
pooled over every case. They are reported, and judged only against thresholds the user gives
(--min-cosine, --min-top1-agreement): how much accuracy a deployment may give up is the user's call.

top-1 agreement: the share of rows (every position of the output but its last axis: an image's class scores, a
token's vocabulary logits) whose largest entry is at the same index in both; padded positions do not count.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class TaskFigures:
    """The figures of one output, accumulated case by case."""

    output: str
    dot: float = 0.0
    squares_expected: float = 0.0
    squares_actual: float = 0.0
    rows: int = 0
    agreeing_rows: int = 0
    max_abs_error: float = 0.0

    def add(self, expected: np.ndarray, actual: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Pool one case's outputs; `valid` (the output's leading axes, like an attention mask) marks the rows that
        count."""
        e = np.asarray(expected, np.float64).reshape(-1, expected.shape[-1] if expected.ndim else 1)
        a = np.asarray(actual, np.float64).reshape(e.shape)
        if valid is not None:
            keep = np.broadcast_to(valid.reshape(valid.shape + (1,) * (expected.ndim - 1 - valid.ndim)),
                                   expected.shape[:-1]).reshape(-1)
            e, a = e[keep], a[keep]
        self.dot += float(np.sum(e * a))
        self.squares_expected += float(np.sum(e * e))
        self.squares_actual += float(np.sum(a * a))
        self.rows += e.shape[0]
        self.agreeing_rows += int(np.count_nonzero(e.argmax(-1) == a.argmax(-1))) if e.size else 0
        self.max_abs_error = max(self.max_abs_error, float(np.abs(a - e).max(initial=0.0)))

    @property
    def cosine(self) -> float:
        norms = math.sqrt(self.squares_expected * self.squares_actual)
        return self.dot / norms if norms else (1.0 if self.squares_expected == self.squares_actual else 0.0)

    @property
    def top1_agreement(self) -> float:
        return self.agreeing_rows / self.rows if self.rows else math.nan

    def describe(self) -> str:
        return (f"{self.output}: cosine {self.cosine:.6f}, top-1 agreement {100 * self.top1_agreement:.2f} % "
                f"({self.agreeing_rows}/{self.rows} rows), max abs error {self.max_abs_error:.3e}")

    def shortfalls(self, min_cosine: float | None, min_top1_agreement: float | None, against: str) -> list[str]:
        """A line for each threshold this output misses."""
        found = []
        if min_cosine is not None and not self.cosine >= min_cosine:
            found.append(f"{self.output}: cosine similarity {self.cosine:.6f} to {against} is below "
                         f"--min-cosine {min_cosine}")
        if min_top1_agreement is not None and not self.top1_agreement >= min_top1_agreement:
            found.append(f"{self.output}: top-1 agreement {self.top1_agreement:.4f} with {against} is below "
                         f"--min-top1-agreement {min_top1_agreement}")
        return found

    def to_dict(self) -> dict:
        return {"output": self.output, "cosine_similarity": self.cosine, "top1_agreement": self.top1_agreement,
                "rows": self.rows, "agreeing_rows": self.agreeing_rows, "max_abs_error": self.max_abs_error}


def check_threshold(name: str, value: float | None) -> None:
    """A threshold is a share: a number in [0, 1] (cosine: [-1, 1])."""
    low = -1.0 if name == "min_cosine" else 0.0
    if value is not None and not low <= value <= 1.0:
        raise ValueError(f"{name.replace('_', '-')} must be within [{low:g}, 1], got {value}")


__all__ = ["TaskFigures", "check_threshold"]
