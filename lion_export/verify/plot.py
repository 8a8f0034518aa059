"""Histogram of absolute errors per output, so a report shows the error distribution, not only its maximum."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import atomic_output
from .report import VerificationReport


def histogram_path(report_path: str | Path) -> Path:
    """report.json -> report.errors.png, next to it."""
    report_path = Path(report_path)
    return report_path.with_name(report_path.stem + ".errors.png")


def plot_error_histogram(report: VerificationReport, path: str | Path) -> Path:
    """log10 |actual - expected| of every compared element, one curve per (case, output), tolerance marked."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    floor = 1e-12   # exact matches are drawn at the floor instead of vanishing from a log axis
    fig, ax = plt.subplots(figsize=(7, 4))
    bins = np.linspace(-12, 1, 66)
    for case in report.cases:
        for out in case.outputs:
            errors = out.abs_errors[np.isfinite(out.abs_errors)]
            if errors.size:
                ax.hist(np.log10(np.maximum(errors, floor)), bins=bins, histtype="step",
                        label=f"{case.label} / {out.name}")
    ax.axvline(np.log10(max(report.tolerance.atol, floor)), color="k", linestyle="--", label="atol")
    ax.set_xlabel("log10 |onnx - pytorch|")
    ax.set_ylabel("elements")
    ax.set_yscale("log")
    ax.set_title(f"{Path(report.onnx_path).name}: {report.mode or 'unknown mode'}, {report.dtype}")
    ax.legend(fontsize="small")
    fig.tight_layout()
    path = Path(path)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path


__all__ = ["histogram_path", "plot_error_histogram"]
