"""Steps that more than one `lion-export` command runs: the parity check and the engine build, each called in the
library, then printed (a table on a terminal, plain text when piped, one line with --quiet, JSON with --json)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .errors import errors


def verify_and_report(check: Callable[[], Any], checked: Path, report_path: Path | None, as_json: bool,
                      quiet: bool, debug: bool, quiet_line: str) -> None:
    """Run the parity check `check` (lion_export.verify), write the report if asked and print it (as JSON with
    --json; with --quiet, `quiet_line` formatted with the file and the verdict); exit 1 on a parity failure."""
    from ..verify import print_report, write_report

    with errors(debug, "verification"):
        report = check()
        if report_path is not None:
            write_report(report, report_path)
    if as_json:
        click.echo(report.to_json(), nl=False)
    elif quiet:
        click.echo(quiet_line.format(file=checked, verdict="PASSED" if report.passed else "FAILED"))
    else:
        print_report(report)
    if not report.passed:
        raise SystemExit(1)


def build_and_report(onnx_file: Path, engine_path: Path, options: Any, quiet: bool, debug: bool) -> None:
    """Build the engine (lion_export.engine.build) and print its summary; exit 2 on bad input or a missing
    TensorRT, 1 when TensorRT fails on a file that passed every check."""
    from rich.console import Console

    from ..console_output import output_console
    from ..engine.build import BuildError, build_engine
    from ..engine.build_progress import choose_display
    from ..engine.build_report import print_build_report

    stderr = Console(stderr=True)
    if debug:
        options.verbose_log = lambda line: stderr.print(line, highlight=False, markup=False)
    with errors(debug, "engine build", failed=(BuildError,)):
        report = build_engine(onnx_file, engine_path, options, choose_display(stderr, quiet=quiet))
    for warning in report.warnings:
        click.echo(f"lion-export: warning: {warning}", err=True)
    if quiet:
        click.echo(f"wrote {report.engine} ({report.backend} {report.version}, {report.engine_bytes / 2**20:.2f} MiB, "
                   f"{report.build_seconds:.1f} s, {report.plugin_layers} plugin layers)")
    else:
        print_build_report(report, output_console())


__all__ = ["verify_and_report", "build_and_report"]
