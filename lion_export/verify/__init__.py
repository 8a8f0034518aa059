"""Parity verification: eager PyTorch vs an exported artefact (or one file vs another), output by output, each
output against a bound calibrated on eager PyTorch in the artefact's own dtype (or the fixed table).

Public API (what `lion-export export` and `lion-export verify` call):
    report = verify_onnx(model, "model.onnx", seq_lens=None, batch=2, dtype=None, tolerance="calibrated",
                         atol=None, rtol=None, error_stat=None, inputs=None, providers="cpu", progress=True,
                         min_cosine=None, min_top1_agreement=None)
    # an INT8 QDQ file (lion-export quantize) is compared with the model fake-quantized as the file says
    # (fake_quant.py); report.task holds its task-level figures against the float model (task_figures.py)
    report = verify_files("model.fp32.onnx", "model.fp16.onnx",      # file vs file (or an engine), calibrated
                          checkpoint_path="model.pt")                # on the checkpoint (default: found beside)
    report.passed; report.to_dict(); report.to_json(); report.write_json("report.json")
    print_report(report)                       # a table, one row per (case, output); plain text when piped
    write_report(report, "report.json")        # JSON + error histograms PNG next to it
Runners (`TorchRunner`, `OnnxRuntimeRunner`, in lion_export.runners) share one interface (`with runner: runner.infer(feed)`) and import
their backend lazily; the comparator (`compare_outputs`) knows nothing about any backend.
"""
from __future__ import annotations

from pathlib import Path

from .compare import OutputComparison, compare_outputs
from .case_inputs import InputsError, InputSpec, graph_input_specs, load_inputs
from .parity import default_seq_lens, verify_files, verify_onnx
from .error_histogram import histogram_path, plot_error_histogram
from .parity_report import CaseResult, VerificationReport, print_report
from .tolerances import TOLERANCES, Tolerance, ToleranceRequest, tolerance_for
from ..runners import OnnxRuntimeRunner, Runner, TorchRunner


def write_report(report: VerificationReport, path: str | Path) -> tuple[Path, Path]:
    """Write the JSON report and its error histogram (report.errors.png) next to it; returns both paths.

    The plot goes first: it is the step that can fail on its own (matplotlib), and a report without its
    histogram should not be left behind when it does. Each file is written atomically.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    png_path = plot_error_histogram(report, histogram_path(path))
    return report.write_json(path), png_path


__all__ = ["verify_onnx", "verify_files", "ToleranceRequest", "write_report", "print_report", "default_seq_lens", "VerificationReport", "CaseResult",
           "OutputComparison", "compare_outputs", "Runner", "TorchRunner", "OnnxRuntimeRunner", "InputSpec",
           "InputsError", "graph_input_specs", "load_inputs", "Tolerance", "TOLERANCES", "tolerance_for"]
