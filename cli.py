"""The `lion-export` command: checkpoint -> ONNX (+ verification), and the tools around it.

Imported as `lion_export.cli` (lion_export/cli.py is a symlink to this file). The command only parses options and
reports; all work lives in the `lion_export` package so that it can be tested and used without a shell. `lion-export model.pt ...` with no
subcommand name means `lion-export export model.pt ...`, the main job.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from lion_export import __version__

DEFAULT_COMMAND = "export"


class DefaultGroup(click.Group):
    """A group whose first argument, when it is not a subcommand name or an option, goes to `export`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """Usage errors (an unknown option, a missing argument) as one line and exit 2, like every other bad input;
        a bare `lion-export` still shows the help."""
        kwargs["standalone_mode"] = False
        try:
            return super().main(*args, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:
            exc.show()
            raise SystemExit(exc.exit_code) from None
        except click.UsageError as exc:
            command = exc.ctx.command_path if exc.ctx is not None else "lion-export"
            _bad_input(f"{exc.format_message().rstrip('.')} (see '{command} --help')")
        except click.Abort:
            click.echo("Aborted!", err=True)
            raise SystemExit(1) from None


@click.group(cls=DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lion-export")
def main() -> None:
    """Export LION linear-attention models to ONNX / TensorRT and prove parity with eager PyTorch.

    \b
    lion-export model.pt --mode recurrent      # = lion-export export model.pt --mode recurrent
    """


def _bad_input(message: str) -> NoReturn:
    """One line on stderr and exit code 2: every command's answer to bad input (no traceback, nothing written)."""
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
        _bad_input(f"--seq-lens must be a comma-separated list of integers >= 2, got {text!r}")
    return lengths


def _int_option(option: str, text: str) -> int:
    """An integer option parsed here, not by click, so a bad value is one line (click's usage error is several)."""
    try:
        return int(text)
    except ValueError:
        _bad_input(f"{option} must be an integer, got {text!r}")


def _positive_int(option: str, text: str | None) -> int | None:
    """A positive integer option, or None when not given."""
    if text is None:
        return None
    value = _int_option(option, text)
    if value <= 0:
        _bad_input(f"{option} must be a positive integer, got {text!r}")
    return value


def _one_line(error: BaseException) -> str:
    """An exception's message on one line (some of torch's span several)."""
    return " ".join(str(error).split()) or type(error).__name__


def _internal_failure(step: str, error: Exception, debug: bool) -> NoReturn:
    """A failure that is not the user's input (a bug, a library error): one line and exit 1, unless --debug."""
    if debug:
        raise error
    click.echo(f"lion-export: error: {step} failed: {type(error).__name__}: {_one_line(error)} "
               "(rerun with --debug for the traceback)", err=True)
    raise SystemExit(1)


def _check_report_target(path: Path | None, option: str = "--report", example: str = "report.json") -> None:
    """Refuse an output path (--report, --save-inputs, ...) that could not be written before the work, not after."""
    if path is None:
        return
    if path.is_dir():
        _bad_input(f"{option} {path} is a directory; give a file name such as {path / example}")
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        _bad_input(f"{option} {path} cannot be created: {ancestor} is not a writable directory")


def _checkpoint_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """How a command that reads a checkpoint may read it: the command gets one `reading` argument, a
    lion_export.checkpoints.ReadOptions (pickles, a config JSON, and for public LION files the weights to
    take and any part of the architecture not to infer)."""

    @functools.wraps(command)
    def with_reading(*args: Any, allow_pickle: bool, config_path: Path | None, weights: str | None,
                     preset: str | None, mask: str | None, heads: str | None, natural: bool | None,
                     cls_pooling: bool | None, **kwargs: Any) -> Any:
        from lion_export.checkpoints import ReadOptions

        reading = ReadOptions(allow_pickle=allow_pickle, config_path=config_path, weights=weights, preset=preset,
                              mask=mask, heads=_positive_int("--heads", heads), natural=natural,
                              cls_pooling=cls_pooling)
        return command(*args, reading=reading, **kwargs)

    options = [
        click.option("--allow-pickle", is_flag=True, help="Accept checkpoints that need full unpickling "
                     "(runs code from the file: trusted files only)."),
        click.option("--config", "config_path", type=click.Path(path_type=Path),
                     help="Model config JSON: of a .safetensors checkpoint (default: its name with .json), or the "
                          "architecture of a public state_dict instead of inferring it."),
        click.option("--weights", metavar="model|model_ema",
                     help="Which weights of a public training checkpoint to read (default: model)."),
        click.option("--preset", metavar="NAME", help="Public file: the size preset (decides the heads)."),
        click.option("--mask", metavar="VARIANT", help="Public file: lit, decay or selective (default: from a_i)."),
        click.option("--heads", metavar="N", help="Public file: attention heads (default: from the decay or preset)."),
        click.option("--natural/--no-natural", default=None,
                     help="Public vision file: natural-order variant (default: if a2_i is present)."),
        click.option("--cls-pooling/--mean-pooling", default=None,
                     help="Public vision file: pooling (default: the training args', else mean)."),
    ]
    for option in reversed(options):
        with_reading = option(with_reading)
    return with_reading


def _read_checkpoint(checkpoint: Path, reading: Any, quiet: bool, say: Callable[[str], None] | None = None) -> Any:
    """The model in CHECKPOINT; a public file's inferred architecture is printed as one line (on stderr, or through
    `say`) unless quiet."""
    from lion_export.checkpoints import read_model

    say = say or (lambda line: click.echo(line, err=True))
    return read_model(checkpoint, reading, report=None if quiet else say)


def _parity_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """How a parity check judges and records: tolerances, error statistic, providers, inputs / outputs files, JSON."""
    options = [
        click.option("--tolerance", "tolerance", default="calibrated", show_default=True, metavar="METHOD",
                     help="calibrated (eager PyTorch in the graph's dtype sets each output's bound) or fixed "
                          "(the fp32 / fp16 table)."),
        click.option("--atol", multiple=True, metavar="[OUTPUT:]X",
                     help="Absolute tolerance for every output, or one output (logits:1e-4); repeatable."),
        click.option("--rtol", multiple=True, metavar="[OUTPUT:]X",
                     help="Relative tolerance (x |expected|), for every output or one; repeatable."),
        click.option("--check-error-stat", "error_stat", default="max", show_default=True, metavar="STAT",
                     help="max (every element within its bound), mean or median of |err| / bound must be <= 1."),
        click.option("--providers", default="cpu", show_default=True, metavar="LIST",
                     help="onnxruntime execution providers, in order: cpu, cuda, tensorrt (cuda and tensorrt need "
                          "onnxruntime-gpu)."),
        click.option("--load-inputs", "--inputs", "inputs", type=click.Path(dir_okay=False, path_type=Path),
                     help="Inputs .npz: one array per graph input, or the cases written by --save-inputs."),
        click.option("--save-inputs", type=click.Path(dir_okay=False, path_type=Path), metavar="PATH",
                     help="Write the inputs of every case to this .npz (reload with --load-inputs)."),
        click.option("--save-outputs", type=click.Path(dir_okay=False, path_type=Path), metavar="PATH",
                     help="Write every case's outputs to this .npz (case0/expected/logits, case0/actual/...)."),
        click.option("--per-block", is_flag=True, help="Also compare every block's mixer and MLP output and name "
                     "the first beyond its bound (done anyway when parity fails)."),
        click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout (nothing else)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _parse_bounds(option: str, values: tuple[str, ...]) -> dict[str | None, float] | None:
    """--atol 1e-4 --atol logits:1e-3 -> {None: 1e-4, "logits": 1e-3}; a bad value is one line, exit 2."""
    bounds: dict[str | None, float] = {}
    for text in values:
        name, separator, number = text.rpartition(":")
        try:
            value = float(number)
        except ValueError:
            value = -1.0
        if not value >= 0 or (separator and not name):
            _bad_input(f"{option} must be X or OUTPUT:X with a number X >= 0, got {text!r}")
        bounds[name or None] = value
    return bounds or None


def _parity_settings(tolerance: str, atol: tuple[str, ...], rtol: tuple[str, ...], error_stat: str,
                     providers: str, inputs: Path | None, save_inputs: Path | None, save_outputs: Path | None,
                     per_block: bool) -> dict[str, Any]:
    """The options of _parity_options, checked, as keyword arguments of verify_onnx / verify_files."""
    from lion_export.verify.compare import ERROR_STATS
    from lion_export.verify.tolerances import TOLERANCE_METHODS

    if tolerance not in TOLERANCE_METHODS:
        _bad_input(f"unknown --tolerance {tolerance!r}; choose one of: {', '.join(TOLERANCE_METHODS)}")
    if error_stat not in ERROR_STATS:
        _bad_input(f"unknown --check-error-stat {error_stat!r}; choose one of: {', '.join(ERROR_STATS)}")
    _check_report_target(save_inputs, "--save-inputs", "inputs.npz")
    _check_report_target(save_outputs, "--save-outputs", "outputs.npz")
    return {"tolerance": tolerance, "atol": _parse_bounds("--atol", atol), "rtol": _parse_bounds("--rtol", rtol),
            "error_stat": error_stat, "providers": providers, "inputs": inputs, "save_inputs": save_inputs,
            "save_outputs": save_outputs, "per_block": True if per_block else None}


@main.command("export")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--mode", default="chunked", show_default=True, metavar="MODE",
              help="Graph form: chunked (standard ops, fast), recurrent (one lion.SelectiveScan node per LION pass, "
                   "backed by a local function) or parallel (full masked attention, the baseline).")
@click.option("--chunk-size", default="64", show_default=True, metavar="N", help="Chunk size of the chunked form.")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Output .onnx file (default: CHECKPOINT with the suffix .onnx).")
@click.option("--dtype", default="fp32", show_default=True, metavar="DTYPE",
              help="fp32 or fp16 (fp16 graph; decay sums and exponentials stay fp32 inside).")
@click.option("--opset", metavar="N", help="Standard ONNX opset (default: the newest onnxruntime supports).")
@click.option("--batch", default="2", show_default=True, metavar="N", help="Batch size of the traced example input.")
@click.option("--seq-len", metavar="N",
              help="Tokens in the traced example (text models, default min(128, max_len); vision models without a "
                   "position embedding: traced at the most nearly square image with that many tokens).")
@click.option("--static", is_flag=True, help="Freeze batch and sequence axes to the example's sizes.")
@click.option("--no-verify", is_flag=True, help="Skip the parity check against eager PyTorch.")
@click.option("--report", "report_path", type=click.Path(path_type=Path),
              help="Write the parity report as JSON here (and an error histogram PNG next to it).")
@click.option("--engine", "engine_path", is_flag=False, flag_value="", default=None, metavar="[PATH]",
              help="After a passing verification, also build a TensorRT engine (default path: the .onnx with the "
                   "suffix .engine), as `lion-export build` does with its defaults.")
@_parity_options
@_checkpoint_options
@click.option("--quiet", is_flag=True, help="Print one line: the file written and the parity verdict.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def export_command(checkpoint: Path, mode: str, chunk_size: str, output: Path | None, dtype: str, opset: str | None,
                   batch: str, seq_len: str | None, static: bool, no_verify: bool, report_path: Path | None,
                   engine_path: str | None, tolerance: str, atol: tuple[str, ...], rtol: tuple[str, ...],
                   error_stat: str, providers: str, inputs: Path | None, save_inputs: Path | None, save_outputs: Path | None, per_block: bool,
                   as_json: bool, reading: Any, quiet: bool, debug: bool) -> None:
    """Export CHECKPOINT to ONNX, then verify it against eager PyTorch (exit 1 if parity fails).

    \b
    lion-export model.pt --mode recurrent
    lion-export model.pt --mode chunked --chunk-size 64 -o out/model.onnx --dtype fp16
    lion-export model.pt --mode recurrent --engine          # export, verify, build model.engine
    """
    from rich.console import Console

    from lion_export.artefacts import ENGINE_SUFFIX, ONNX_SUFFIX
    from lion_export.checkpoints import CheckpointError
    from lion_export.dtypes import GRAPH_DTYPES as DTYPES
    from lion_export.export import ExportError, export_onnx, resolve_opset
    from lion_export.forms import FORMS as MODES
    from lion_export.progress import phases

    if mode not in MODES:
        _bad_input(f"unknown --mode {mode!r}; choose one of: {', '.join(MODES)}")
    if dtype not in DTYPES:
        _bad_input(f"unknown --dtype {dtype!r}; choose one of: {', '.join(DTYPES)}")
    if no_verify and report_path is not None:
        _bad_input("--report needs the parity check: drop --no-verify")
    _check_report_target(report_path)
    parity = _parity_settings(tolerance, atol, rtol, error_stat, providers, inputs, save_inputs, save_outputs,
                              per_block)
    chunk = _positive_int("--chunk-size", chunk_size)
    batch_size = _positive_int("--batch", batch)
    length = _positive_int("--seq-len", seq_len)
    output = checkpoint.with_suffix(ONNX_SUFFIX) if output is None else output
    engine = None if engine_path is None else (Path(engine_path) if engine_path else output.with_suffix(ENGINE_SUFFIX))
    if engine is not None:
        _check_engine_target(engine)
    console = Console(stderr=True, quiet=quiet or as_json)
    try:
        target_opset = resolve_opset(None if opset is None else _int_option("--opset", opset))
        with phases(console, "loading the checkpoint") as step:
            model = _read_checkpoint(checkpoint, reading, quiet,
                                     lambda line: console.print(line, highlight=False, markup=False, soft_wrap=True))
            export_onnx(model, output, form=mode, chunk_size=chunk, dtype=dtype, opset=target_opset, static=static,
                        batch=batch_size, seq_len=length, checkpoint_path=checkpoint, progress=step)
    except (CheckpointError, ExportError, ValueError, OSError) as exc:
        if debug:
            raise
        _bad_input(_one_line(exc))
    except Exception as exc:  # noqa: BLE001 - an exporter failure that is not the user's input: one line, exit 1
        _internal_failure("export", exc, debug)
    console.print(f"wrote {output} ({mode}, {dtype}, opset {target_opset})", highlight=False, markup=False)
    if no_verify:
        if quiet:
            click.echo(f"wrote {output} (not verified)")
    else:
        from lion_export.verify import verify_onnx

        _verify_and_report(lambda: verify_onnx(model, output, progress=not (quiet or as_json), batch=batch_size,
                                               checkpoint_path=checkpoint, **parity),
                           output, report_path, quiet, debug, quiet_line="wrote {file}; parity {verdict}",
                           as_json=as_json)
    if engine is not None:
        from lion_export.engine.build import BuildOptions

        _build_and_report(output, engine, BuildOptions(), quiet, debug)


def _verify_and_report(check: Callable[[], Any], onnx_file: Path, report_path: Path | None, quiet: bool,
                       debug: bool, quiet_line: str, as_json: bool = False) -> None:
    """Run the parity check `check` (lion_export.verify), print it (as JSON with --json; with --quiet,
    `quiet_line` formatted with the file and the verdict) and write the report if asked. Exit 2 on bad input
    (a ValueError / OSError: files, inputs, providers), 1 on a parity failure."""
    from lion_export.verify import print_report, write_report

    try:
        report = check()
        if report_path is not None:
            write_report(report, report_path)
    except (ValueError, OSError) as exc:          # CheckpointError, OnnxFileError, InputsError are ValueErrors
        if debug:
            raise
        _bad_input(_one_line(exc))
    except Exception as exc:  # noqa: BLE001 - see _internal_failure
        _internal_failure("verification", exc, debug)
    if as_json:
        click.echo(report.to_json(), nl=False)
    elif quiet:
        click.echo(quiet_line.format(file=onnx_file, verdict="PASSED" if report.passed else "FAILED"))
    else:
        print_report(report)
    if not report.passed:
        raise SystemExit(1)


@main.command()
@click.argument("first", metavar="A", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("second", metavar="B", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--seq-lens", help="Comma-separated token counts, e.g. 17,197,1024 (default: trace length, another, "
                                 "one not a multiple of the chunk size).")
@click.option("--batch", default="2", show_default=True, help="Batch size of generated inputs.")
@click.option("--dtype", metavar="DTYPE", help="The checked file's precision, fp32 or fp16 (default: read from the "
                                               ".onnx; engines: fp32).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the JSON report here (and an error histogram PNG next to it).")
@click.option("--optimization", default="all", show_default=True,
              help="onnxruntime graph optimisation level: all, extended, basic or disable.")
@click.option("--checkpoint", "checkpoint_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Two files: the checkpoint they came from, to calibrate the bound (default: one beside them "
                   "whose sha256 their metadata records; else the fixed table).")
@_parity_options
@_checkpoint_options
@click.option("--quiet", is_flag=True, help="Print only the verdict.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def verify(first: Path, second: Path, seq_lens: str | None, batch: str, dtype: str | None, report_path: Path | None,
           optimization: str, tolerance: str, atol: tuple[str, ...], rtol: tuple[str, ...], error_stat: str,
           providers: str, inputs: Path | None, save_inputs: Path | None, save_outputs: Path | None, per_block: bool,
           as_json: bool, reading: Any, quiet: bool, debug: bool, checkpoint_file: Path | None) -> None:
    """Prove B computes what A computes; exit 1 on a parity failure.

    \b
    A and B are each a checkpoint (.pt, .safetensors, ...), an .onnx file or a TensorRT engine (.engine, .plan):
    lion-export verify model.pt model.onnx             # eager PyTorch (float64) vs onnxruntime
    lion-export verify model.fp32.onnx model.fp16.onnx # two files on the same inputs, the first the reference
    """
    from lion_export.verify import verify_files, verify_onnx
    from lion_export.artefacts import artefact_kind
    from lion_export.verify.onnxruntime_runner import OPTIMIZATION_LEVELS

    lengths = _parse_seq_lens(seq_lens)
    batch_size = _positive_int("--batch", batch)
    _check_report_target(report_path)
    parity = _parity_settings(tolerance, atol, rtol, error_stat, providers, inputs, save_inputs, save_outputs,
                              per_block)
    if optimization not in OPTIMIZATION_LEVELS:
        _bad_input(f"unknown --optimization {optimization!r}; choose one of: {', '.join(OPTIMIZATION_LEVELS)}")
    if dtype is not None and dtype not in ("fp32", "fp16"):
        _bad_input(f"unknown --dtype {dtype!r}; choose one of: fp32, fp16")
    kinds = (artefact_kind(first), artefact_kind(second))
    if kinds == ("checkpoint", "checkpoint"):
        _bad_input(f"{first} and {second} are both checkpoints; compare a checkpoint with an .onnx or engine file, "
                   "or two such files")
    options = dict(seq_lens=lengths, batch=batch_size, dtype=dtype, optimization=optimization,
                   progress=not (quiet or as_json), **parity)
    if "checkpoint" in kinds:
        if checkpoint_file is not None:
            _bad_input("--checkpoint is for two files; here the checkpoint is one of A and B (drop it)")
        checkpoint, checked = (first, second) if kinds[0] == "checkpoint" else (second, first)

        def check():
            model = _read_checkpoint(checkpoint, reading, quiet or as_json)
            return verify_onnx(model, checked, checkpoint_path=checkpoint, **options)
    else:
        checked = second
        if options.pop("per_block"):
            _bad_input("--per-block compares a file with its checkpoint's blocks: give the checkpoint as A")

        def check():
            model = None if checkpoint_file is None else _read_checkpoint(checkpoint_file, reading, quiet or as_json)
            return verify_files(first, second, model=model, checkpoint_path=checkpoint_file, **options)
    _verify_and_report(check, checked, report_path, quiet, debug, quiet_line="parity {verdict}: {file}",
                       as_json=as_json)


def _check_engine_target(path: Path) -> None:
    """Refuse an engine path that could not be written before exporting or building, not after."""
    from lion_export.engine.build import check_output_path

    try:
        check_output_path(path, "--engine")
    except ValueError as exc:
        _bad_input(_one_line(exc))


def _build_and_report(onnx_file: Path, engine_path: Path, options: Any, quiet: bool, debug: bool) -> None:
    """Build the engine (lion_export.engine.build) and print its summary; exit 2 on bad input or a missing
    TensorRT, 1 when TensorRT fails on a file that passed every check."""
    from rich.console import Console

    from lion_export.engine.build import BuildError, build_engine
    from lion_export.engine.build_progress import choose_display
    from lion_export.engine.build_report import print_build_report

    errors = Console(stderr=True)
    if debug:
        options.verbose_log = lambda line: errors.print(line, highlight=False, markup=False)
    try:
        report = build_engine(onnx_file, engine_path, options, choose_display(errors, quiet=quiet))
    except (ValueError, OSError) as exc:      # GraphFileError, ProfileError, TargetError, BackendError, ParseError
        if debug:
            raise
        _bad_input(_one_line(exc))
    except BuildError as exc:
        if debug:
            raise
        click.echo(f"lion-export: error: {_one_line(exc)}", err=True)
        raise SystemExit(1) from None
    except Exception as exc:  # noqa: BLE001 - see _internal_failure
        _internal_failure("engine build", exc, debug)
    if quiet:
        click.echo(f"wrote {report.engine} ({report.backend} {report.version}, {report.engine_bytes / 2**20:.2f} MiB, "
                   f"{report.build_seconds:.1f} s, {report.plugin_layers} plugin layers)")
    else:
        print_build_report(report, Console())


@main.command("build")
@click.argument("onnx_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Engine file (default: ONNX_FILE with the suffix .engine).")
@click.option("--batch", metavar="MIN,OPT,MAX", help="Batch range of the engine (or one N); default 1,TRACE,8.")
@click.option("--seq-len", metavar="MIN,OPT,MAX",
              help="Tokens (default: 1, the trace length, max_len); vision models: images of that many tokens.")
@click.option("--image-size", metavar="HxW,HxW,HxW",
              help="Vision models without a position embedding: min, opt, max image (or one HxW).")
@click.option("--arch", metavar="LIST", help="TensorRT-RTX targets, e.g. sm_86,sm_89 (default: every target an fp32 "
                                             "graph builds for: sm_80,sm_86,sm_89,sm_120,sm_121).")
@click.option("--no-plugin", is_flag=True, help="Inline the SelectiveScan local function instead of binding the "
                                                "lion::SelectiveScan plugin (for runtimes without the plugin).")
@click.option("--aot", "aot", is_flag=True, help="Standard TensorRT >= 10.9: bind the AOT plugin, whose PTX the "
                                                 "engine embeds, so it runs under trtexec / C++ without Python.")
@click.option("--kernels", "kernel_dirs", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              metavar="DIR", help="With --aot: `compile-kernels` folders to take the PTX from (else compiled now).")
@click.option("--workspace", metavar="MiB", help="Builder workspace limit in MiB (default: TensorRT's).")
@click.option("--timing-cache", type=click.Path(dir_okay=False, path_type=Path), metavar="PATH",
              help="Read / update this timing cache (standard TensorRT; TensorRT-RTX has none).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Build report JSON (default: beside the engine, MODEL.build.json).")
@click.option("--quiet", is_flag=True, help="Print one line: the engine written.")
@click.option("--debug", is_flag=True, help="Show TensorRT's log and tracebacks.")
def build_command(onnx_file: Path, output: Path | None, batch: str | None, seq_len: str | None,
                  image_size: str | None, arch: str | None, no_plugin: bool, aot: bool,
                  kernel_dirs: tuple[Path, ...], workspace: str | None,
                  timing_cache: Path | None, report_path: Path | None, quiet: bool, debug: bool) -> None:
    """Build a TensorRT engine from a lion-export ONNX file (TensorRT-RTX builds without a GPU).

    \b
    lion-export build model.onnx                                  # -> model.engine + model.build.json
    lion-export build model.onnx --seq-len 1,512,4096 --arch sm_89
    """
    from lion_export.artefacts import ENGINE_SUFFIX
    from lion_export.engine.build import BuildOptions
    from lion_export.engine.profiles import ProfileError, ProfileOptions, parse_image_sizes, parse_range

    try:
        profiles = ProfileOptions(batch=parse_range("--batch", batch), seq_len=parse_range("--seq-len", seq_len),
                                  image_size=parse_image_sizes(image_size))
    except ProfileError as exc:
        _bad_input(_one_line(exc))
    if kernel_dirs and not aot:
        _bad_input("--kernels goes with --aot")
    options = BuildOptions(profiles=profiles, arch=arch, use_plugin=not no_plugin,
                           aot_kernels=tuple(kernel_dirs) if aot else None, workspace_mib=_positive_int("--workspace", workspace), timing_cache=timing_cache,
                           report_path=report_path)
    _build_and_report(onnx_file, onnx_file.with_suffix(ENGINE_SUFFIX) if output is None else output, options, quiet,
                      debug)


@main.command("run")
@click.argument("engine_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--inputs", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="inputs.npz with one array per engine input.")
@click.option("--outputs", type=click.Path(dir_okay=False, path_type=Path), help="Write the outputs here (.npz).")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def run_command(engine_file: Path, inputs: Path, outputs: Path | None, debug: bool) -> None:
    """Run a TensorRT engine on inputs.npz (needs a CUDA GPU and the TensorRT that built it)."""
    import numpy as np

    from lion_export.atomic import atomic_output
    from lion_export.engine.build import check_output_path
    from lion_export.engine.header import read_engine_header
    from lion_export.engine.runner import TensorRTRunner
    from lion_export.verify.case_inputs import load_inputs

    try:
        read_engine_header(engine_file)
        if not inputs.is_file():
            raise ValueError(f"inputs file {str(inputs)!r} does not exist")
        if outputs is not None:
            check_output_path(outputs, "--outputs")
        with TensorRTRunner(engine_file) as runner:
            results = runner.infer(load_inputs(inputs, runner.input_specs()))
            described = runner.describe()
        if outputs is not None:
            with atomic_output(outputs) as tmp, open(tmp, "wb") as handle:
                np.savez(handle, **results)
    except (ValueError, OSError) as exc:           # EngineFileError, RunnerUnavailable, InputsError
        if debug:
            raise
        _bad_input(_one_line(exc))
    except Exception as exc:  # noqa: BLE001 - see _internal_failure
        _internal_failure("engine run", exc, debug)
    click.echo(f"ran {described}")
    for name, array in results.items():
        values = array.astype(np.float64)
        click.echo(f"{name}: {array.dtype.name}{list(array.shape)} min {values.min():.4g} max {values.max():.4g} "
                   f"mean {values.mean():.4g}")
    if outputs is not None:
        click.echo(f"wrote {outputs}")


@main.command("convert")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="The lion-export checkpoint to write: NAME.pt, or NAME.safetensors (+ NAME.json).")
@_checkpoint_options
@click.option("--quiet", is_flag=True, help="Print only the file written.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def convert(checkpoint: Path, output: Path, reading: Any, quiet: bool, debug: bool) -> None:
    """Rewrite CHECKPOINT (e.g. a public LION state_dict) as a lion-export checkpoint with its config, so later
    commands read it with no options."""
    from lion_export.checkpoints import CheckpointError, save_checkpoint, save_safetensors

    if output.suffix not in (".pt", ".safetensors"):
        _bad_input(f"-o {output}: the output must end in .pt or .safetensors")
    if output.resolve() == checkpoint.resolve():
        _bad_input(f"-o {output} is the input file; write the conversion to another name")
    if output.is_dir():
        _bad_input(f"-o {output} is a directory; give a file name such as {output / 'model.pt'}")
    try:
        model = _read_checkpoint(checkpoint, reading, quiet)
        if output.suffix == ".safetensors":
            written = save_safetensors(model, output)
        else:
            written = (save_checkpoint(model, output),)
    except (CheckpointError, ValueError, OSError) as exc:
        if debug:
            raise
        _bad_input(_one_line(exc))
    click.echo(f"wrote {' + '.join(str(p) for p in written)}")


@main.command("inspect")
@click.argument("onnx_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def inspect_command(onnx_file: Path, as_json: bool, debug: bool) -> None:
    """Show an .onnx file's metadata, op histogram, dynamic axes, custom nodes and local functions; or, for a
    TensorRT engine (.engine / .plan / .trt), what its header says (no GPU needed) and its build report."""
    import json

    from lion_export.artefacts import artefact_kind
    from lion_export.graph_summary import OnnxFileError, print_summary, summarize

    if artefact_kind(onnx_file) == "engine":
        _inspect_engine(onnx_file, as_json, debug)
        return
    try:
        summary = summarize(onnx_file)
    except (OnnxFileError, OSError) as exc:
        if debug:
            raise
        _bad_input(_one_line(exc))
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2))
    else:
        print_summary(summary)


def _inspect_engine(engine_file: Path, as_json: bool, debug: bool) -> None:
    import json

    from lion_export.engine.header import EngineFileError, read_engine_header
    from lion_export.engine.build_report import print_engine_summary, read_build_report

    try:
        header = read_engine_header(engine_file)
    except (EngineFileError, OSError) as exc:
        if debug:
            raise
        _bad_input(_one_line(exc))
    build = read_build_report(engine_file)
    if as_json:
        click.echo(json.dumps({"header": header.to_dict(), "build_report": build}, indent=2))
    else:
        from rich.console import Console

        print_engine_summary(header, build, Console())


@main.command("compile-kernels")
@click.option("--arch", metavar="SM", help="GPU target, e.g. sm_87 (Jetson Orin); an unknown one lists the others.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), metavar="DIR",
              help="Directory for the .ptx/.cubin files and manifest.json (created if missing).")
@click.option("--dtype", default="fp16", show_default=True, metavar="DTYPE",
              help="Element type of q, k, v, y: fp16, bf16 or fp32.")
@click.option("--head-dim", default="64", show_default=True, metavar="N", help="dk, the query/key head dim.")
@click.option("--head-dim-v", metavar="N", help="dv, the value head dim (default: --head-dim).")
@click.option("--chunk-size", default="64", show_default=True, metavar="N", help="Chunk size of the chunked kernels (fp32 above head dim 64 runs at most 32; the manifest says which).")
@click.option("--normalize/--no-normalize", default=True, show_default=True,
              help="Divide by the LION normaliser (vision models) or not (MLM).")
@click.option("--eps", default="1e-6", show_default=True, metavar="X",
              help="The normaliser's eps (baked into the PTX).")
@click.option("--ptx-version", default="8.0", show_default=True, metavar="X.Y",
              help="PTX ISA version: 8.0 loads on every CUDA 12+ driver (JetPack 6 included); newer needs newer.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def compile_kernels_command(arch: str | None, out_dir: Path | None, dtype: str, head_dim: str, head_dim_v: str | None,
                            chunk_size: str, normalize: bool, eps: str, ptx_version: str, debug: bool) -> None:
    """Compile the Triton kernels ahead of time for one GPU (no GPU needed): PTX, cubin and a launch manifest."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from lion_export.kernels.aot.specs import KernelConfig, kernel_specs
    from lion_export.kernels.aot.bundle import write_kernel_bundle
    from lion_export.kernels.aot.compiler import KernelCompileError, compile_kernels
    from lion_export.kernels.aot.cuda_targets import check_ptx_version, parse_ptx_version, ptx_version_text, target

    if arch is None or out_dir is None:
        _bad_input("compile-kernels needs --arch (e.g. sm_87) and --out DIR")
    try:
        float_eps = float(eps)
    except ValueError:
        _bad_input(f"--eps must be a number, got {eps!r}")
    try:
        gpu = target(arch)
        ptx = parse_ptx_version(ptx_version)
        check_ptx_version(gpu, ptx)
        config = KernelConfig(dtype=dtype, head_dim=_int_option("--head-dim", head_dim),
                              head_dim_v=None if head_dim_v is None else _int_option("--head-dim-v", head_dim_v),
                              normalize=normalize, eps=float_eps, chunk_size=_int_option("--chunk-size", chunk_size))
        count = len(kernel_specs(config))
        console = Console(stderr=True)
        with Progress(TextColumn("compiling for {task.fields[arch]}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.description}"), TimeElapsedColumn(), console=console) as progress:
            task = progress.add_task("", total=count, arch=gpu.name)
            kernels = compile_kernels(gpu.name, config, ptx_version=ptx,
                                      progress=lambda name: progress.update(task, advance=1, description=name))
        manifest_path = write_kernel_bundle(out_dir, kernels, config)
    except (KernelCompileError, ValueError, OSError) as exc:
        if debug:
            raise
        _bad_input(_one_line(exc))
    for kernel in kernels:
        grid = " x ".join(kernel.spec.grid_formula)
        click.echo(f"{kernel.spec.name}: entry {kernel.entry}, grid ({grid}), {kernel.spec.threads_per_block} "
                   f"threads, {kernel.shared_mem} B shared, {len(kernel.ptx_params)} PTX params "
                   f"({len(kernel.hidden_params)} hidden, {len(kernel.stripped_params)} unused hidden dropped)")
    click.echo(f"wrote {len(kernels)} kernels for {gpu.name} (PTX {ptx_version_text(ptx)}) to {manifest_path.parent} "
               f"(see {manifest_path.name})")


def _csv_option(text: str) -> tuple[str, ...]:
    """"a,b,c" -> ("a", "b", "c"); validation is the command's (it knows the valid names)."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


@main.command("bench")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--modes", default="parallel,chunked,recurrent", show_default=True, help="LION forms to time.")
@click.option("--backends", default="eager,onnxruntime,tensorrt", show_default=True,
              help="Backends; an absent one (tensorrt without a GPU) is reported as skipped.")
@click.option("--seq-lens", default="256,1024,4096,16384", show_default=True, help="Sequence lengths (tokens).")
@click.option("--batch", default="1", show_default=True, metavar="N")
@click.option("--dtype", default="fp32", show_default=True, metavar="DTYPE", help="fp32 or fp16.")
@click.option("--threads", default="1", show_default=True, metavar="N",
              help="CPU threads of every backend (1: the least noisy on a shared machine).")
@click.option("--repeats", default="5", show_default=True, metavar="N", help="Timed runs per point (median kept).")
@click.option("--warmup", default="2", show_default=True, metavar="N", help="Untimed runs before them.")
@click.option("--timeout", "timeout_s", default="600", show_default=True, metavar="S",
              help="Seconds one point may take before it is recorded as a timeout.")
@click.option("--no-softmax", is_flag=True, help="Leave out the softmax-attention baseline.")
@click.option("--out", "out_dir", default=".", show_default=True, type=click.Path(path_type=Path), metavar="DIR",
              help="Directory for bench.json and bench.png.")
@_checkpoint_options
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def bench_command(checkpoint: Path, modes: str, backends: str, seq_lens: str, batch: str, dtype: str, threads: str,
                  repeats: str, warmup: str, timeout_s: str, no_softmax: bool, out_dir: Path, reading: Any,
                  debug: bool) -> None:
    """Latency and peak memory of CHECKPOINT's forms per backend vs sequence length: bench.json + bench.png.

    \b
    lion-export bench model.pt --seq-lens 256,1024,4096 --backends eager,onnxruntime --out results/
    """
    import sys
    import time

    from lion_export.bench import BenchError, BenchRequest, run_bench

    warmup_runs = _int_option("--warmup", warmup)
    request = BenchRequest(checkpoint=checkpoint, forms=_csv_option(modes),
                           backends=_csv_option(backends),
                           seq_lens=tuple(_parse_seq_lens(seq_lens)), batch=_positive_int("--batch", batch),
                           dtype=dtype, threads=_positive_int("--threads", threads),
                           repeats=_positive_int("--repeats", repeats), warmup=warmup_runs,
                           point_timeout_s=float(_positive_int("--timeout", timeout_s)),
                           softmax_baseline=not no_softmax, out=out_dir)
    start = time.perf_counter()
    bar = None
    if sys.stderr.isatty():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        bar = Progress(TextColumn("bench {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       transient=True)

    def progress(text: str, done: int, total: int) -> None:
        if bar is None:
            click.echo(f"[{done + (done < total)}/{total}] {text} ({time.perf_counter() - start:.0f} s)", err=True)
            return
        if not bar.tasks:
            bar.start()
            bar.add_task(text, total=total)
        bar.update(bar.tasks[0].id, completed=done, description=text)

    try:
        request.check()
        model = _read_checkpoint(checkpoint, reading, quiet=False)
        document = run_bench(request, progress, model=model)
    except (BenchError, ValueError, OSError) as exc:
        if debug:
            raise
        _bad_input(_one_line(exc))
    except Exception as exc:  # noqa: BLE001 - see _internal_failure
        _internal_failure("bench", exc, debug)
    finally:
        if bar is not None:
            bar.stop()
    for series in document["series"]:
        cells = []
        for point in (p for p in document["points"] if p["series"] == series["series"]):
            value = (f"{point['median_ms']:.1f} ms / {point['peak_mib']:.0f} MiB" if point["status"] == "ok"
                     else point["status"])
            cells.append(f"L={point['seq_len']}: {value}")
        reason = f" (skipped: {series['skipped']})" if series["skipped"] else ""
        click.echo(f"{series['series']:<22} " + ("; ".join(cells) if not reason else reason.strip()))
    click.echo(f"wrote {out_dir / 'bench.json'} and {out_dir / 'bench.png'} in {document['seconds']:.0f} s")


if __name__ == "__main__":
    main()
