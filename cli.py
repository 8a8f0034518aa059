"""The `lion-export` command: checkpoint -> ONNX (+ verification), and the tools around it.

Installed as `lion_export.console.cli`. The command only parses options and reports; all work lives in the
`lion_export` package so that it can be tested and used without a shell. `lion-export model.pt ...` with no
subcommand name means `lion-export export model.pt ...`, the main job.
"""
from __future__ import annotations

from pathlib import Path

import click

from lion_export import __version__

DEFAULT_COMMAND = "export"


class DefaultGroup(click.Group):
    """A group whose first argument, when it is not a subcommand name or an option, goes to `export`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)


@click.group(cls=DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lion-export")
def main() -> None:
    """Export LION linear-attention models to ONNX / TensorRT and prove parity with eager PyTorch.

    \b
    lion-export model.pt --mode recurrent      # = lion-export export model.pt --mode recurrent
    """


def _verify_bad_input(message: str) -> None:
    """One line on stderr and exit code 2: the `verify` / `inspect` convention for bad input."""
    click.echo(f"lion-export: error: {message}", err=True)
    raise SystemExit(2)


def _parse_seq_lens(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        lengths = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        lengths = []
    if not lengths or any(n < 2 for n in lengths):
        _verify_bad_input(f"--seq-lens must be a comma-separated list of integers >= 2, got {text!r}")
    return lengths


@main.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("onnx_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--inputs", type=click.Path(dir_okay=False, path_type=Path),
              help="inputs.npz with one array per graph input (instead of generated inputs).")
@click.option("--seq-lens", help="Comma-separated token counts, e.g. 17,197,1024 (default: trace length, another, "
                                 "one not a multiple of the chunk size).")
@click.option("--batch", type=click.IntRange(min=1), default=2, show_default=True,
              help="Batch size of generated inputs.")
@click.option("--atol", type=click.FloatRange(min=0), help="Absolute tolerance (default: by dtype).")
@click.option("--rtol", type=click.FloatRange(min=0), help="Relative tolerance (default: by dtype).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the JSON report here (and an error histogram PNG next to it).")
@click.option("--optimization", type=click.Choice(["all", "extended", "basic", "disable"]), default="all",
              show_default=True, help="onnxruntime graph optimisation level.")
@click.option("--allow-pickle", is_flag=True, help="Allow loading pickled (non-safetensors) checkpoints.")
@click.option("--quiet", is_flag=True, help="Print only the verdict.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def verify(checkpoint: Path, onnx_file: Path, inputs: Path | None, seq_lens: str | None, batch: int,
           atol: float | None, rtol: float | None, report_path: Path | None, optimization: str,
           allow_pickle: bool, quiet: bool, debug: bool) -> None:
    """Prove ONNX_FILE computes what CHECKPOINT computes in eager PyTorch; exit 1 on a parity failure."""
    from lion_export.checkpoint import CheckpointError, load_checkpoint
    from lion_export.inspect import OnnxFileError
    from lion_export.verify import InputsError, print_report, verify_onnx, write_report

    lengths = _parse_seq_lens(seq_lens)
    try:
        model = load_checkpoint(checkpoint, allow_pickle=allow_pickle)
        report = verify_onnx(model, onnx_file, seq_lens=lengths, batch=batch, atol=atol, rtol=rtol, inputs=inputs,
                             optimization=optimization, progress=not quiet)
        if report_path is not None:
            write_report(report, report_path)
    except (CheckpointError, OnnxFileError, InputsError, ValueError, OSError) as exc:
        if debug:
            raise
        _verify_bad_input(str(exc))
    if quiet:
        click.echo(f"parity {'PASSED' if report.passed else 'FAILED'}: {onnx_file}")
    else:
        print_report(report)
    if not report.passed:
        raise SystemExit(1)


@main.command("inspect")
@click.argument("onnx_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def inspect_command(onnx_file: Path, as_json: bool, debug: bool) -> None:
    """Show an .onnx file's metadata, op histogram, dynamic axes, custom nodes and local functions."""
    import json

    from lion_export.inspect import OnnxFileError, print_summary, summarize

    try:
        summary = summarize(onnx_file)
    except (OnnxFileError, OSError) as exc:
        if debug:
            raise
        _verify_bad_input(str(exc))
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2))
    else:
        print_summary(summary)


if __name__ == "__main__":
    main()
