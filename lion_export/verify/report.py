"""The parity report: what was run, how each output compared, and the verdict, as JSON and as a printed table."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import write_bytes_atomically
from .compare import OutputComparison
from .tolerances import Tolerance


@dataclass
class CaseResult:
    """One run of both backends on one feed (one sequence length or one batch size)."""

    label: str
    seq_len: int | None
    batch: int
    input_shapes: dict[str, list[int]]
    outputs: list[OutputComparison]

    @property
    def passed(self) -> bool:
        return bool(self.outputs) and all(o.passed for o in self.outputs)

    def to_dict(self) -> dict:
        return {"label": self.label, "seq_len": self.seq_len, "batch": self.batch,
                "input_shapes": self.input_shapes, "passed": self.passed,
                "outputs": [o.to_dict() for o in self.outputs]}


@dataclass
class VerificationReport:
    """Parity of one .onnx file against eager PyTorch; `passed` only when every output of every case passed."""

    onnx_path: str
    mode: str | None
    dtype: str
    reference: str                  # e.g. "pytorch parallel form, float64"
    actual: str                     # e.g. "onnxruntime 1.20 (CPUExecutionProvider)"
    tolerance: Tolerance
    varied: str                     # "seq_len", "batch" or "inputs" (a user's inputs.npz)
    notes: list[str] = field(default_factory=list)
    cases: list[CaseResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.cases) and all(c.passed for c in self.cases)

    def to_dict(self) -> dict:
        return {"onnx_path": self.onnx_path, "mode": self.mode, "dtype": self.dtype,
                "reference": self.reference, "actual": self.actual,
                "tolerance": {"atol": self.tolerance.atol, "rtol": self.tolerance.rtol},
                "varied": self.varied, "notes": self.notes, "passed": self.passed,
                "cases": [c.to_dict() for c in self.cases]}

    def write_json(self, path: str | Path) -> Path:
        """Write the report (NaN statistics become null, so the file is strict JSON)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomically(path, (json.dumps(_strict(self.to_dict()), indent=2) + "\n").encode())
        return path


def _strict(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strict(v) for v in value]
    return value


def _fmt(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.3e}"


def print_report(report: VerificationReport, console=None) -> None:
    """One table row per (case, output): errors, cosine similarity and PASS/FAIL, then the verdict."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console()
    tol = report.tolerance
    title = f"Parity: {Path(report.onnx_path).name} ({report.mode or 'unknown mode'}, {report.dtype})"
    caption = f"expected: {report.reference}; actual: {report.actual}"
    table = Table(title=escape(title), caption=escape(caption), title_justify="left", caption_justify="left")
    for column in ("case", "output", "shape", "max abs err", "max rel err", "cosine", "result"):
        table.add_column(column, justify="right" if column.startswith(("max", "cos")) else "left")
    for case in report.cases:
        for out in case.outputs:
            why = out.problem or f"{out.mismatched} elem."
            verdict = "[green]PASS[/]" if out.passed else f"[red]FAIL[/] {escape(why)}"
            table.add_row(escape(case.label), escape(out.name), "x".join(map(str, out.shape)),
                          _fmt(out.max_abs_error), _fmt(out.max_rel_error), "n/a" if math.isnan(out.cosine_similarity)
                          else f"{out.cosine_similarity:.7f}", verdict)
    console.print(table)
    for note in report.notes:
        console.print(f"note: {escape(note)}")
    verdict = "[green]PASSED[/]" if report.passed else "[red]FAILED[/]"
    console.print(f"parity {verdict} (atol {tol.atol:g}, rtol {tol.rtol:g}; |err| <= atol + rtol*|expected|)")


__all__ = ["CaseResult", "VerificationReport", "print_report"]
