"""The comparator: expected vs actual output arrays -> per-output error statistics, headroom and a verdict.

It knows nothing about any backend (PyTorch, onnxruntime, TensorRT): it sees only dicts of numpy arrays and one
bound per output, so the same comparison proves every step of the pipeline. All statistics are in float64.

Every element has a bound, atol + rtol * |expected|, and a headroom, |actual - expected| / bound (1 = exactly at
the bound). The check's statistic (max, the default: every element within its bound; mean or median, as
Polygraphy's --check-error-stat) of the headroom must be <= 1. Non-finite values in `actual` always fail.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .tolerances import Tolerance

ERROR_STATS = ("max", "mean", "median")


@dataclass
class OutputComparison:
    """How one output of one run compares. The element arrays (kept for the histogram) are not serialised."""

    name: str
    shape: tuple[int, ...]
    max_abs_error: float
    mean_abs_error: float
    max_rel_error: float
    cosine_similarity: float
    mismatched: int          # elements outside their bound atol + rtol * |expected|
    compared: int            # elements compared (padded positions excluded)
    headroom: float          # the check's statistic of |err| / bound: <= 1 passes
    max_headroom: float      # the worst element's |err| / bound
    passed: bool
    tolerance: Tolerance | None = None
    error_stat: str = "max"
    problem: str | None = None   # why the output could not be compared at all (missing, wrong shape)
    abs_errors: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    headrooms: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    def to_dict(self) -> dict:
        tol = self.tolerance
        return {"name": self.name, "shape": list(self.shape), "max_abs_error": self.max_abs_error,
                "mean_abs_error": self.mean_abs_error, "max_rel_error": self.max_rel_error,
                "cosine_similarity": self.cosine_similarity, "mismatched": self.mismatched,
                "compared": self.compared, "headroom": self.headroom, "max_headroom": self.max_headroom,
                "error_stat": self.error_stat, "passed": self.passed,
                "tolerance": None if tol is None else tol.to_dict(), "problem": self.problem}


def failed_comparison(name: str, shape: tuple[int, ...], problem: str) -> OutputComparison:
    """A comparison that could not be made (missing output, wrong shape, backend error): always a failure."""
    nan = float("nan")
    return OutputComparison(name, shape, nan, nan, nan, nan, 0, 0, nan, nan, False, problem=problem)


def cosine_similarity(expected: np.ndarray, actual: np.ndarray) -> float:
    """Cosine of the angle between the flattened arrays; 1.0 when both are all zeros."""
    e, a = expected.ravel(), actual.ravel()
    norms = float(np.linalg.norm(e) * np.linalg.norm(a))
    if norms == 0.0:
        return 1.0 if not e.any() and not a.any() else 0.0
    return float(np.dot(e, a) / norms)


def valid_elements(array: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """The float64 elements of `array` that count: all, or those where `valid` (its leading axes) is True."""
    values = np.asarray(array, dtype=np.float64)
    if valid is None:
        return values.ravel()
    keep = np.broadcast_to(valid.reshape(valid.shape + (1,) * (values.ndim - valid.ndim)), values.shape)
    return values[keep]


def headroom_of(diff: np.ndarray, expected: np.ndarray, tolerance: Tolerance) -> np.ndarray:
    """|err| / (atol + rtol * |expected|) element-wise; a zero bound gives 0 for an exact match, inf otherwise."""
    bound = tolerance.atol + tolerance.rtol * np.abs(expected)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = diff / bound
    return np.where(bound > 0, ratio, np.where(diff == 0, 0.0, np.inf))


def compare_output(name: str, expected: np.ndarray, actual: np.ndarray, tolerance: Tolerance,
                   valid: np.ndarray | None = None, error_stat: str = "max") -> OutputComparison:
    """Compare one output. `valid` (broadcastable to the output's leading axes) marks elements that count.

    Relative error is |actual - expected| / |expected| over elements with expected != 0 (shown, never judged:
    near zero it is meaningless; the bound's atol covers those elements).
    """
    if error_stat not in ERROR_STATS:
        raise ValueError(f"error_stat must be one of {ERROR_STATS}, got {error_stat!r}")
    if tuple(expected.shape) != tuple(actual.shape):
        return failed_comparison(name, tuple(actual.shape),
                                 f"shape {tuple(actual.shape)} differs from the reference's {tuple(expected.shape)}")
    e, a = valid_elements(expected, valid), valid_elements(actual, valid)
    if e.size == 0:
        return failed_comparison(name, tuple(expected.shape), "no elements to compare")
    finite = np.isfinite(a)
    diff = np.where(finite, np.abs(a - e), np.inf)
    nonzero = e != 0
    rel = diff[nonzero] / np.abs(e[nonzero])
    ratio = headroom_of(diff, e, tolerance)
    statistic = {"max": np.max, "mean": np.mean, "median": np.median}[error_stat](ratio)
    mismatched = int(np.count_nonzero(~(ratio <= 1.0)))
    return OutputComparison(
        name=name, shape=tuple(expected.shape),
        max_abs_error=float(diff.max()), mean_abs_error=float(diff.mean()),
        max_rel_error=float(rel.max()) if rel.size else 0.0,
        cosine_similarity=cosine_similarity(e, np.where(finite, a, 0.0)),
        mismatched=mismatched, compared=int(e.size), headroom=float(statistic), max_headroom=float(ratio.max()),
        passed=bool(finite.all()) and float(statistic) <= 1.0, tolerance=tolerance, error_stat=error_stat,
        abs_errors=diff.astype(np.float32), headrooms=ratio.astype(np.float32))


def compare_outputs(expected: dict[str, np.ndarray], actual: dict[str, np.ndarray],
                    tolerances: Tolerance | dict[str, Tolerance], valid: dict[str, np.ndarray] | None = None,
                    error_stat: str = "max") -> list[OutputComparison]:
    """Compare every expected output (one tolerance for all, or one per output name); an output the actual run
    lacks is a failure, never skipped."""
    results = []
    for name, exp in expected.items():
        if name not in actual:
            results.append(failed_comparison(name, tuple(exp.shape), "missing from the actual outputs"))
            continue
        tolerance = tolerances[name] if isinstance(tolerances, dict) else tolerances
        results.append(compare_output(name, exp, actual[name], tolerance, (valid or {}).get(name), error_stat))
    return results


__all__ = ["OutputComparison", "ERROR_STATS", "compare_output", "failed_comparison", "compare_outputs",
           "cosine_similarity", "headroom_of", "valid_elements"]
