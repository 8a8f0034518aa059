"""The one tolerance table: how close an exported model must come to eager PyTorch, by the export's dtype.

The reference is eager PyTorch in float64 (where it fits), so each tolerance below bounds the error of the
exported graph alone. An element passes when |actual - expected| <= atol + rtol * |expected| (numpy.isclose).

fp32: rtol 1e-4, atol 1e-5 (the issue's defaults). A fp32 graph differs from the exact result by rounding only:
the tiny models below, exported in fp32, measured max abs errors of 1e-8 .. 2e-7, so the bound leaves ~50x head
room, while a model whose decay bias differs by 0.5 from the exported one already fails it.

fp16: rtol 1e-2, atol 5e-3. fp16's unit round-off is 2^-11 ~ 4.9e-4, so an output of magnitude 2-4 cannot even
be stored closer than ~1e-3 to the exact value. Measured (2026-11, onnxruntime 1.32 CPU, tiny models of depth 2 and
dim 64, all three variants, chunked and recurrent exports, text hidden states after LayerNorm at L = 33 / 64 / 128
with padded rows, vision logits of a few units at batch 1-3): max abs error 1.0e-3 .. 2.4e-3, cosine similarity
>= 0.9999998; max relative errors reach 10+ only at elements near zero, which atol covers. atol 5e-3 is twice the
worst measurement (~10 fp16 ulps at magnitude 1) and rtol 1e-2 scales it for larger outputs; the fp32 defaults
fail these same fp16 exports (tests/test_verify.py::test_fp16_tolerance_is_met_by_the_tiny_models).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tolerance:
    """Elementwise bound |actual - expected| <= atol + rtol * |expected|."""

    atol: float
    rtol: float


TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(atol=1e-5, rtol=1e-4),
    "fp16": Tolerance(atol=5e-3, rtol=1e-2),
}


def tolerance_for(dtype: str, atol: float | None = None, rtol: float | None = None) -> Tolerance:
    """The table's tolerance for `dtype` ("fp32" | "fp16"), with either bound overridden when given."""
    if dtype not in TOLERANCES:
        raise ValueError(f"no tolerance for dtype {dtype!r}; known: {', '.join(TOLERANCES)}")
    for name, value in (("atol", atol), ("rtol", rtol)):
        if value is not None and not value >= 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    default = TOLERANCES[dtype]
    return Tolerance(atol=default.atol if atol is None else float(atol),
                     rtol=default.rtol if rtol is None else float(rtol))


__all__ = ["Tolerance", "TOLERANCES", "tolerance_for"]
