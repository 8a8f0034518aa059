"""The parity report: what was run, how each output compared, and the verdict, as JSON and as a printed table.

On a terminal the table is drawn with rich; anywhere else (a pipe, a file, CI logs) it is plain text with every
column at full width, so shapes, paths and hashes are never cut at 80 columns.
"""
from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import write_bytes_atomically
from ..console_output import plain_table
from .compare import OutputComparison

COLUMNS = ("case", "output", "shape", "max abs err", "mean abs err", "bound", "headroom", "failing", "cosine",
           "result")


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
    """Parity of one artefact against a reference; `passed` only when every output of every case passed."""

    artefact: str                   # the file checked
    mode: str | None
    dtype: str
    reference: str                  # e.g. "pytorch 2.13 (float64) (parallel form)"
    actual: str                     # e.g. "onnxruntime 1.32 (CPUExecutionProvider, optimisation all)"
    tolerance_method: str           # "calibrated" or "fixed"
    error_stat: str                 # "max", "mean" or "median" of |err| / bound
    varied: str                     # "seq_len", "batch" or "inputs" (a user's .npz)
    notes: list[str] = field(default_factory=list)
    cases: list[CaseResult] = field(default_factory=list)
    calibration: str | None = None  # what set the calibrated bounds, e.g. "eager pytorch, chunked form, fp32"
    hint: str | None = None         # shown on the verdict line (e.g. a checkpoint sha256 mismatch)
    reference_artefact: str | None = None   # the checkpoint or file the reference ran
    failures: list[str] = field(default_factory=list)   # failed static checks (precision.py), fail the report
    blocks: list = field(default_factory=list)   # blocks.StageResult rows (per-block localisation), if made
    block_case: str | None = None
    block_finding: str | None = None
    task: list = field(default_factory=list)     # task_figures.TaskFigures per output, when measured
    task_against: str | None = None             # what they compare with: "the float model", a file's name

    @property
    def passed(self) -> bool:
        return bool(self.cases) and all(c.passed for c in self.cases) and not self.failures

    @property
    def worst_headroom(self) -> float:
        values = [o.headroom for c in self.cases for o in c.outputs]
        return max(values, key=lambda v: math.inf if math.isnan(v) else v) if values else math.nan

    def to_dict(self) -> dict:
        return {"artefact": self.artefact, "reference_artefact": self.reference_artefact, "mode": self.mode,
                "dtype": self.dtype, "reference": self.reference, "actual": self.actual,
                "tolerance_method": self.tolerance_method, "calibration": self.calibration,
                "error_stat": self.error_stat, "varied": self.varied, "notes": self.notes, "failures": self.failures, "hint": self.hint,
                "passed": self.passed, "worst_headroom": self.worst_headroom,
                "cases": [c.to_dict() for c in self.cases],
                "task_figures": None if not self.task else {"against": self.task_against,
                                                             "outputs": [t.to_dict() for t in self.task]},
                "per_block": None if not self.blocks else {"case": self.block_case, "finding": self.block_finding,
                                                           "stages": [b.to_dict() for b in self.blocks]}}

    def to_json(self) -> str:
        """Strict JSON (NaN statistics become null)."""
        return json.dumps(_strict(self.to_dict()), indent=2) + "\n"

    def write_json(self, path: str | Path) -> Path:
        """Write the report atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomically(path, self.to_json().encode())
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


def _bound(out: OutputComparison) -> str:
    tol = out.tolerance
    if tol is None:
        return "n/a"
    return f"{tol.atol:.2e}" + (f" + {tol.rtol:.1e}*|exp|" if tol.rtol else "")


def rows(report: VerificationReport) -> list[tuple[list[str], bool]]:
    """One row of cells per (case, output) and whether it passed."""
    table = []
    for case in report.cases:
        for out in case.outputs:
            result = "PASS" if out.passed else "FAIL" + (f" ({out.problem})" if out.problem else "")
            table.append(([case.label, out.name, "x".join(map(str, out.shape)), _fmt(out.max_abs_error),
                           _fmt(out.mean_abs_error), _bound(out),
                           "n/a" if math.isnan(out.headroom) else f"{out.headroom:.3g}",
                           f"{out.mismatched}/{out.compared}",
                           "n/a" if math.isnan(out.cosine_similarity) else f"{out.cosine_similarity:.7f}", result],
                          out.passed))
    return table


BLOCK_COLUMNS = ("stage", "max abs err", "mean abs err", "bound", "headroom", "failing", "result")


def block_rows(report: VerificationReport) -> list[list[str]]:
    """One row per stage of the per-block table."""
    table = []
    for row in report.blocks:
        out = row.comparison
        table.append([row.stage, _fmt(out.max_abs_error), _fmt(out.mean_abs_error), _bound(out),
                      "n/a" if math.isnan(out.headroom) else f"{out.headroom:.3g}",
                      f"{out.mismatched}/{out.compared}", "PASS" if out.passed else "FAIL"])
    return table


def task_lines(report: VerificationReport) -> list[str]:
    """The task-level figures (task_figures.py), a line per output, if they were measured."""
    if not report.task:
        return []
    return [f"task figures against {report.task_against}:", *(f"  {t.describe()}" for t in report.task)]


def _title(report: VerificationReport) -> str:
    against = f" vs {Path(report.reference_artefact).name}" if report.reference_artefact else ""
    return f"Parity: {Path(report.artefact).name}{against} ({report.mode or 'unknown mode'}, {report.dtype})"


def verdict_line(report: VerificationReport) -> str:
    """PASSED / FAILED, the criterion, the worst headroom, and any hint."""
    if report.tolerance_method == "none":
        return (f"verification {'PASSED' if report.passed else 'FAILED'} (a float file against an INT8 file: no "
                "elementwise bound; the task-level figures, judged only by the thresholds given)")
    if report.tolerance_method == "calibrated":
        rule = f"calibrated bounds from {report.calibration}"
    else:
        rule = f"fixed {report.dtype} table"
    worst = report.worst_headroom
    text = (f"parity {'PASSED' if report.passed else 'FAILED'} ({rule}; {report.error_stat} of |err|/bound must be "
            f"<= 1, worst {'n/a' if math.isnan(worst) else f'{worst:.3g}'})")
    return text + (f"; hint: {report.hint}" if report.hint else "")


def print_report(report: VerificationReport, console=None, plain: bool | None = None) -> None:
    """One row per (case, output): errors, the bound, headroom (|err| / bound, the check's statistic), failing
    elements / compared, cosine similarity and PASS/FAIL, then the notes and the verdict. `plain` (default: when
    stdout is not a terminal) prints text without styles or truncation."""
    body = rows(report)
    caption = f"expected: {report.reference}; actual: {report.actual}"
    if plain is None:
        plain = console is None and not sys.stdout.isatty()
    if plain:
        out = sys.stdout if console is None else None
        lines = [_title(report), plain_table(COLUMNS, [r for r, _ in body]), caption]
        if report.blocks:
            lines += ["", f"Per block ({report.block_case}):", plain_table(BLOCK_COLUMNS, block_rows(report)),
                      f"per block: {report.block_finding}"]
        lines += [*task_lines(report), *(f"note: {n}" for n in report.notes),
                  *(f"FAIL: {f}" for f in report.failures), verdict_line(report)]
        text = "\n".join(lines)
        if out is not None:
            print(text, file=out)
        else:
            console.print(text, markup=False, highlight=False, soft_wrap=True)
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console()
    table = Table(title=escape(_title(report)), caption=escape(caption), title_justify="left",
                  caption_justify="left")
    for column in COLUMNS:
        table.add_column(column, justify="left" if column in ("case", "output", "shape", "result") else "right",
                         overflow="fold")
    for cells, passed in body:
        styled = [escape(c) for c in cells]
        styled[-1] = f"[green]{styled[-1]}[/]" if passed else f"[red]{styled[-1]}[/]"
        table.add_row(*styled)
    console.print(table)
    if report.blocks:
        blocks = Table(title=escape(f"Per block ({report.block_case})"), title_justify="left")
        for column in BLOCK_COLUMNS:
            blocks.add_column(column, justify="left" if column in ("stage", "result") else "right")
        for cells in block_rows(report):
            blocks.add_row(*map(escape, cells))
        console.print(blocks)
        console.print(f"per block: {escape(report.block_finding or '')}")
    for line in task_lines(report):
        console.print(escape(line))
    for note in report.notes:
        console.print(f"note: {escape(note)}")
    for failure in report.failures:
        console.print(f"[red]FAIL:[/] {escape(failure)}")
    colour = "green" if report.passed else "red"
    console.print(f"[{colour}]{escape(verdict_line(report))}[/]")


__all__ = ["CaseResult", "VerificationReport", "print_report", "plain_table", "rows", "task_lines", "verdict_line"]
