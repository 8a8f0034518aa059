"""The comparator: expected vs actual output arrays -> per-output error statistics and a verdict.

It knows nothing about any backend (PyTorch, onnxruntime, TensorRT): it sees only dicts of numpy arrays, so the
same comparison proves every step of the pipeline. All statistics are computed in float64.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .tolerances import Tolerance


@dataclass
class OutputComparison:
    """How one output of one run compares. `abs_errors` (kept for the histogram) is not serialised."""

    name: str
    shape: tuple[int, ...]
    max_abs_error: float
    max_rel_error: float
    cosine_similarity: float
    mismatched: int          # elements outside atol + rtol * |expected|
    compared: int            # elements compared (padded positions excluded)
    passed: bool
    problem: str | None = None   # why the output could not be compared at all (missing, wrong shape)
    abs_errors: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "max_abs_error": self.max_abs_error,
                "max_rel_error": self.max_rel_error, "cosine_similarity": self.cosine_similarity,
                "mismatched": self.mismatched, "compared": self.compared, "passed": self.passed,
                "problem": self.problem}


def failed_comparison(name: str, shape: tuple[int, ...], problem: str) -> OutputComparison:
    """A comparison that could not be made (missing output, wrong shape, backend error): always a failure."""
    nan = float("nan")
    return OutputComparison(name, shape, nan, nan, nan, 0, 0, False, problem)


def cosine_similarity(expected: np.ndarray, actual: np.ndarray) -> float:
    """Cosine of the angle between the flattened arrays; 1.0 when both are all zeros."""
    e, a = expected.ravel(), actual.ravel()
    norms = float(np.linalg.norm(e) * np.linalg.norm(a))
    if norms == 0.0:
        return 1.0 if not e.any() and not a.any() else 0.0
    return float(np.dot(e, a) / norms)


def compare_output(name: str, expected: np.ndarray, actual: np.ndarray, tolerance: Tolerance,
                   valid: np.ndarray | None = None) -> OutputComparison:
    """Compare one output. `valid` (broadcastable to the output's leading axes) marks elements that count.

    Relative error is |actual - expected| / |expected| over elements with expected != 0 (elements that are exactly
    zero are judged by atol alone). Non-finite values in `actual` always fail.
    """
    if tuple(expected.shape) != tuple(actual.shape):
        return failed_comparison(name, tuple(actual.shape),
                       f"shape {tuple(actual.shape)} differs from the reference's {tuple(expected.shape)}")
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if valid is not None:
        keep = np.broadcast_to(valid.reshape(valid.shape + (1,) * (e.ndim - valid.ndim)), e.shape)
        e, a = e[keep], a[keep]
    if e.size == 0:
        return failed_comparison(name, tuple(expected.shape), "no elements to compare")
    diff = np.abs(a - e)
    diff = np.where(np.isfinite(a), diff, np.inf)
    nonzero = e != 0
    rel = diff[nonzero] / np.abs(e[nonzero])
    within = diff <= tolerance.atol + tolerance.rtol * np.abs(e)
    mismatched = int(e.size - np.count_nonzero(within))
    return OutputComparison(
        name=name, shape=tuple(expected.shape),
        max_abs_error=float(diff.max()),
        max_rel_error=float(rel.max()) if rel.size else 0.0,
        cosine_similarity=cosine_similarity(e, np.where(np.isfinite(a), a, 0.0)),
        mismatched=mismatched, compared=int(e.size), passed=mismatched == 0,
        abs_errors=diff.astype(np.float32))


def compare_outputs(expected: dict[str, np.ndarray], actual: dict[str, np.ndarray], tolerance: Tolerance,
                    valid: dict[str, np.ndarray] | None = None) -> list[OutputComparison]:
    """Compare every expected output; an output the actual run lacks is a failure, never skipped."""
    results = []
    for name, exp in expected.items():
        if name not in actual:
            results.append(failed_comparison(name, tuple(exp.shape), "missing from the actual outputs"))
            continue
        results.append(compare_output(name, exp, actual[name], tolerance, (valid or {}).get(name)))
    return results


__all__ = ["OutputComparison", "compare_output", "failed_comparison", "compare_outputs", "cosine_similarity"]
