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
An INT8 QDQ file is held to its fake-quantized reference (fake_quant.py) by a bound of another kind. Its
rounding points make it discontinuous: where an activation lies within a rounding error of a step boundary, the
file and the reference (or two int8 kernels) round it to neighbouring steps, and that one-step flip travels on to
the outputs. No bound on the largest element fits that: measured on the bundled digits model (onnxruntime 1.32's
fused int8 kernels, 300 test digits a batch, minmax / entropy / percentile calibration), the largest logit error
against the reference is 0.18 .. 0.51 of the largest error quantization itself makes (the float model against
the reference), while the mean error is 0.08 .. 0.14 of the mean quantization error. So a QDQ file is judged by
the mean of |err| / bound (the default error statistic for such a file), with

    atol = the fp32 bound above (eager fp32 of the float model vs float64) + SHARE * mean |reference - float model|

SHARE = 0.5: the file must be, on average, at most half as far from the fake-quantized model as the float model
is. That leaves >= 3.5x headroom on the digits measurements, while the float file itself (ratio 1) and a file
whose weights are not the checkpoint's (one layer's weights negated: ratio >> 1) fail.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .compare import valid_elements
from .tolerances import UNIT_ROUNDOFF, Tolerance

FACTOR = 4.0
FLOOR_ULPS = 4.0
SHARE = 0.5


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


def quantized_tolerance(base: Tolerance, expected: np.ndarray, float_model: np.ndarray,
                        valid: np.ndarray | None = None) -> Tolerance:
    """`base` widened by SHARE times the mean quantization error of one output: |expected (the fake-quantized
    reference) - float_model| over the compared elements."""
    diff = np.abs(valid_elements(expected, valid) - valid_elements(float_model, valid))
    error = float(diff.mean()) if diff.size else 0.0
    return Tolerance(atol=base.atol + SHARE * error, rtol=base.rtol,
                     basis=f"{base.basis} + {SHARE:g} x mean quantization error {error:.2e}")


__all__ = ["FACTOR", "FLOOR_ULPS", "SHARE", "calibrated_tolerance", "quantized_tolerance"]
