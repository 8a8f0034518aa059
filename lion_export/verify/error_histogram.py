"""Histograms of a report's errors, so it shows the error distribution, not only its maximum.

Left: log10 |actual - expected| per (case, output), with each output's atol marked. Right: log10 of the headroom
|err| / (atol + rtol * |expected|), the element-wise bound itself, so the line at 0 is the bound for every element
whatever its magnitude; everything left of it passes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import atomic_output
from .parity_report import VerificationReport


def histogram_path(report_path: str | Path) -> Path:
    """report.json -> report.errors.png, next to it."""
    report_path = Path(report_path)
    return report_path.with_name(report_path.stem + ".errors.png")


def plot_error_histogram(report: VerificationReport, path: str | Path) -> Path:
    """Write the two histograms of `report` to `path` (PNG, atomically)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    floor = 1e-12   # exact matches are drawn at the floor instead of vanishing from a log axis
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    bins = np.linspace(-12, 1, 66)
    ratio_bins = np.linspace(-8, 4, 61)
    atols = set()
    for case in report.cases:
        for out in case.outputs:
            label = f"{case.label} / {out.name}"
            errors = out.abs_errors[np.isfinite(out.abs_errors)]
            if errors.size:
                left.hist(np.log10(np.maximum(errors, floor)), bins=bins, histtype="step", label=label)
            ratios = out.headrooms[np.isfinite(out.headrooms)].astype(np.float64)   # exact: the floor bin
            if ratios.size:
                right.hist(np.log10(np.maximum(ratios, 1e-8)), bins=ratio_bins, histtype="step", label=label)
            if out.tolerance is not None and 0 < out.tolerance.atol < np.inf:     # none: file against INT8 file
                atols.add(out.tolerance.atol)
    for atol in sorted(atols):
        left.axvline(np.log10(atol), color="k", linestyle="--", linewidth=0.8)
    left.set_xlabel("log10 |actual - expected|   (dashed: atol of each output)")
    right.axvline(0.0, color="r", linestyle="--", label="bound: atol + rtol*|expected|")
    right.set_xlabel("log10 (|err| / bound)   (< 0 passes)")
    for ax in (left, right):
        ax.set_ylabel("elements")
        ax.set_yscale("log")
    against = f" vs {Path(report.reference_artefact).name}" if report.reference_artefact else ""
    fig.suptitle(f"{Path(report.artefact).name}{against}: {report.mode or 'unknown mode'}, {report.dtype}, "
                 f"{report.tolerance_method} bounds")
    right.legend(fontsize="small")
    fig.tight_layout()
    path = Path(path)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path


__all__ = ["histogram_path", "plot_error_histogram"]
