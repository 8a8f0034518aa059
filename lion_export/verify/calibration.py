"""Calibrated tolerances: eager PyTorch run in the graph's own dtype is the yardstick for the export's error.

A fixed table cannot fit every model: rounding error grows with width, depth, output magnitude and the decays a
model learnt, so a fixed atol is loose for a tiny model and tight for a trained base-size one. Instead the model
runs twice in eager PyTorch on the same inputs: in float64 (the reference, `expected`) and in the graph's dtype
(fp32 or fp16) in the graph's own form, the best a framework computing in that dtype does. Per output:

    eager_error = max |eager_dtype - expected|              (over the compared elements)
    atol        = FACTOR * eager_error + FLOOR_ULPS * u * max |expected|,   rtol = 0

where u is the dtype's unit round-off (2^-24 fp32, 2^-11 fp16); the floor keeps the bound sensible for outputs so
small (or so exact) that eager's own error is near zero. An export passes when its error is within FACTOR times
what eager PyTorch in the same dtype makes. Measured on the tiny test grid (LIT/D/S x text/vision x fp32/fp16,
decays spread over 0.01..0.99), onnxruntime's max error is 0.35x .. 1.22x eager's, so FACTOR = 4 leaves >= 3x
headroom for correct exports, while the wrong exports of tests/test_verify_calibrated.py exceed it.

Two files compared with each other (verify_files) each carry their own error: |b - a| <= |b - x| + |a - x|, so the
bound there takes the sum of eager's errors in each file's dtype and form (one eager run per file). An fp32 file
against an fp16 one thus gets what verify_onnx gives the fp16 file, whichever of the two is the reference.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .compare import valid_elements
from .tolerances import UNIT_ROUNDOFF, Tolerance

FACTOR = 4.0
FLOOR_ULPS = 4.0


def calibrated_tolerance(expected: np.ndarray, eager: np.ndarray | Sequence[np.ndarray], dtype: str,
                         valid: np.ndarray | None = None) -> Tolerance:
    """The bound for one output from the float64 reference and eager PyTorch's output in `dtype` (or several
    eager outputs, one per file compared, whose errors add up); `dtype` sets the floor."""
    if dtype not in UNIT_ROUNDOFF:
        raise ValueError(f"no unit round-off for dtype {dtype!r}; known: {', '.join(UNIT_ROUNDOFF)}")
    e = valid_elements(expected, valid)
    runs = [valid_elements(g, valid) for g in ([eager] if isinstance(eager, np.ndarray) else eager)]
    if e.size == 0 or not all(np.isfinite(g).all() for g in runs):
        raise ValueError(f"eager PyTorch in {dtype} gives no finite output to calibrate against")
    errors = [float(np.abs(g - e).max()) for g in runs]
    eager_error = sum(errors)
    parts = f" ({' + '.join(f'{x:.2e}' for x in errors)}, one eager run per file)" if len(errors) > 1 else ""
    floor = FLOOR_ULPS * UNIT_ROUNDOFF[dtype] * float(np.abs(e).max())
    return Tolerance(atol=FACTOR * eager_error + floor, rtol=0.0,
                     basis=f"calibrated: {FACTOR:g} x eager {dtype} error {eager_error:.2e}{parts} + floor {floor:.1e}")


__all__ = ["FACTOR", "FLOOR_ULPS", "calibrated_tolerance"]
