"""Tolerances: the fixed table by the export's dtype, and how a user's --atol / --rtol (global or per output)
combine with whichever bound the check uses (calibrated by default, see calibration.py; this table with
`tolerance="fixed"` / `--tolerance fixed`).

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

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

TOLERANCE_METHODS = ("calibrated", "fixed")
# unit round-off of each graph dtype: the relative error of storing one value
UNIT_ROUNDOFF = {"fp32": 2.0**-24, "fp16": 2.0**-11}


@dataclass(frozen=True)
class Tolerance:
    """Elementwise bound |actual - expected| <= atol + rtol * |expected|; `basis` says where it came from."""

    atol: float
    rtol: float
    basis: str = field(default="", compare=False)

    def to_dict(self) -> dict:
        return {"atol": self.atol, "rtol": self.rtol, "basis": self.basis}


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
                     rtol=default.rtol if rtol is None else float(rtol), basis=f"fixed table, {dtype}")


Bounds = Mapping[str | None, float]      # output name (None: every output) -> value


def _bounds(option: str, value: float | Bounds | None) -> dict[str | None, float]:
    bounds = {} if value is None else ({None: value} if isinstance(value, (int, float)) else dict(value))
    for name, number in bounds.items():
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not number >= 0:
            where = "" if name is None else f" for output {name!r}"
            raise ValueError(f"{option}{where} must be a number >= 0, got {number!r}")
    return {name: float(number) for name, number in bounds.items()}


@dataclass(frozen=True)
class ToleranceRequest:
    """What the user asked for: a method, and atol / rtol values that replace that method's, for every output
    (key None) or one output by name (a named value wins over the global one)."""

    method: str = "calibrated"
    atol: Mapping[str | None, float] = field(default_factory=dict)
    rtol: Mapping[str | None, float] = field(default_factory=dict)

    @classmethod
    def build(cls, method: str = "calibrated", atol: float | Bounds | None = None,
              rtol: float | Bounds | None = None) -> ToleranceRequest:
        """Check and normalise: atol / rtol as one number (every output) or {output name: number}."""
        if method not in TOLERANCE_METHODS:
            raise ValueError(f"tolerance must be one of {', '.join(TOLERANCE_METHODS)}, got {method!r}")
        return cls(method, _bounds("atol", atol), _bounds("rtol", rtol))

    def check_outputs(self, output_names: list[str]) -> None:
        """A per-output value naming no output of the graph is a typo, not something to ignore."""
        unknown = sorted({n for n in (*self.atol, *self.rtol) if n is not None} - set(output_names))
        if unknown:
            raise ValueError(f"tolerance given for unknown output(s) {unknown}; the graph's outputs are "
                             f"{', '.join(output_names)}")

    def apply(self, base: Tolerance, output: str) -> Tolerance:
        """`base` with the user's atol / rtol for `output`, where given."""
        atol, rtol = self.atol.get(output, self.atol.get(None)), self.rtol.get(output, self.rtol.get(None))
        if atol is None and rtol is None:
            return base
        given = ", ".join(f"{k} {v:g}" for k, v in (("atol", atol), ("rtol", rtol)) if v is not None)
        return replace(base, atol=base.atol if atol is None else atol, rtol=base.rtol if rtol is None else rtol,
                       basis=f"{given} given; otherwise {base.basis}")


__all__ = ["Tolerance", "TOLERANCES", "TOLERANCE_METHODS", "UNIT_ROUNDOFF", "ToleranceRequest", "tolerance_for"]
