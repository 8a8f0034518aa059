"""Option groups shared by `lion-export` commands, each handed to the command as one object.

`checkpoint_options`: how a checkpoint is read -> `reading`, a lion_export.checkpoints.ReadOptions.
`parity_options`: how a parity check judges and records -> `parity`, a ParityOptions, whose fields are the
keyword arguments of lion_export.verify.verify_onnx / verify_files.
`kernel_options`: what the ahead-of-time kernels compute -> `kernel`, the fields of a
lion_export.kernels.aot.specs.KernelConfig as a dict (its checks then run inside the command's error handling).
`quantize_options`: the choices of an INT8 quantization -> `choices`, a lion_export.quantize.QuantizeOptions.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import click

from .param_types import POSITIVE, CommaList, Count, LibraryChoice, OutputBound

Command = Callable[..., Any]


def _with(options: list[Callable[[Command], Command]], command: Command) -> Command:
    """`command` decorated by `options`, the first one listed first in --help."""
    for option in reversed(options):
        command = option(command)
    return command


def _grouped(name: str, build: Callable[..., Any], options: list[Callable[[Command], Command]]) -> Callable[
        [Command], Command]:
    """A decorator adding `options` to a command, which receives them as one argument `name` = build(**values)."""
    taken = [option(lambda: None).__click_params__[0].name for option in options]

    def decorate(command: Command) -> Command:
        @functools.wraps(command)
        def grouped(*args: Any, **kwargs: Any) -> Any:
            values = {key: kwargs.pop(key) for key in taken}
            return command(*args, **{name: build(**values)}, **kwargs)
        return _with(options, grouped)
    return decorate


def _read_options(**values: Any) -> Any:
    from lion_export.checkpoints import ReadOptions

    return ReadOptions(**values)


checkpoint_options = _grouped("reading", _read_options, [
    click.option("--allow-pickle", is_flag=True, help="Accept checkpoints that need full unpickling "
                 "(runs code from the file: trusted files only)."),
    click.option("--config", "config_path", type=click.Path(path_type=Path),
                 help="Model config JSON: of a .safetensors checkpoint (default: its name with .json), or the "
                      "architecture of a public state_dict instead of inferring it."),
    click.option("--weights", metavar="model|model_ema",
                 help="Which weights of a public training checkpoint to read (default: model)."),
    click.option("--preset", metavar="NAME", help="Public file: the size preset (decides the heads)."),
    click.option("--mask", metavar="VARIANT", help="Public file: lit, decay or selective (default: from a_i)."),
    click.option("--heads", type=POSITIVE, metavar="N",
                 help="Public file: attention heads (default: from the decay or preset)."),
    click.option("--natural/--no-natural", default=None,
                 help="Public vision file: natural-order variant (default: if a2_i is present)."),
    click.option("--cls-pooling/--mean-pooling", default=None,
                 help="Public vision file: pooling (default: the training args', else mean)."),
])


def read_checkpoint(checkpoint: Path, reading: Any, quiet: bool, say: Callable[[str], None] | None = None) -> Any:
    """The model in CHECKPOINT; a public file's inferred architecture is printed as one line (on stderr, or through
    `say`) unless quiet."""
    from lion_export.checkpoints import read_model

    say = say or (lambda line: click.echo(line, err=True))
    return read_model(checkpoint, reading, report=None if quiet else say)


Bounds = dict[str | None, float] | None


@dataclass(frozen=True)
class ParityOptions:
    """Everything that decides how a parity check judges and what it records; as_json is how it is printed."""

    tolerance: str = "calibrated"
    atol: Bounds = None
    rtol: Bounds = None
    error_stat: str | None = None           # None: max, and mean for an INT8 QDQ file
    providers: str = "cpu"
    inputs: Path | None = None
    save_inputs: Path | None = None
    save_outputs: Path | None = None
    per_block: bool | None = None           # None: only when parity fails
    min_cosine: float | None = None
    min_top1_agreement: float | None = None
    as_json: bool = False

    def targets(self) -> dict[str, Path | None]:
        """The files the check writes, by option (for output_targets)."""
        return {"--save-inputs": self.save_inputs, "--save-outputs": self.save_outputs}

    def for_checkpoint(self) -> dict[str, Any]:
        """Keyword arguments of verify_onnx (a file against its model)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "as_json"}

    def for_files(self) -> dict[str, Any]:
        """Keyword arguments of verify_files (two files: no blocks of a model to compare them by)."""
        return {k: v for k, v in self.for_checkpoint().items() if k != "per_block"}


def _parity(atol: tuple, rtol: tuple, per_block: bool, **values: Any) -> ParityOptions:
    return ParityOptions(atol=dict(atol) or None, rtol=dict(rtol) or None, per_block=True if per_block else None,
                         **values)


parity_options = _grouped("parity", _parity, [
    click.option("--tolerance", type=LibraryChoice("lion_export.verify.tolerances", "TOLERANCE_METHODS", "METHOD"),
                 default="calibrated", show_default=True,
                 help="calibrated (eager PyTorch in the graph's dtype sets each output's bound) or fixed "
                      "(the fp32 / fp16 table)."),
    click.option("--atol", multiple=True, type=OutputBound(),
                 help="Absolute tolerance for every output, or one output (logits:1e-4); repeatable."),
    click.option("--rtol", multiple=True, type=OutputBound(),
                 help="Relative tolerance (x |expected|), for every output or one; repeatable."),
    click.option("--check-error-stat", "error_stat",
                 type=LibraryChoice("lion_export.verify.compare", "ERROR_STATS", "STAT"),
                 help="max (every element within its bound), mean or median of |err| / bound must be <= 1 "
                      "(default: max; mean for an INT8 QDQ file, whose roundings can flip single elements)."),
    click.option("--providers", default="cpu", show_default=True, metavar="LIST",
                 help="onnxruntime execution providers, in order: cpu, cuda, tensorrt (cuda and tensorrt need "
                      "onnxruntime-gpu)."),
    click.option("--load-inputs", "--inputs", "inputs", type=click.Path(dir_okay=False, path_type=Path),
                 help="Inputs .npz: one array per graph input, or the cases written by --save-inputs."),
    click.option("--save-inputs", type=click.Path(path_type=Path), metavar="PATH",
                 help="Write the inputs of every case to this .npz (reload with --load-inputs)."),
    click.option("--save-outputs", type=click.Path(path_type=Path), metavar="PATH",
                 help="Write every case's outputs to this .npz (case0/expected/logits, case0/actual/...)."),
    click.option("--per-block", is_flag=True, help="Also compare every block's mixer and MLP output and name "
                 "the first beyond its bound (done anyway when parity fails)."),
    click.option("--min-cosine", type=click.FloatRange(-1, 1), metavar="X",
                 help="Fail (exit 1) when an output's cosine similarity to the float model (an INT8 file; file "
                      "against file: to the first file) is below X. The figure is reported for INT8 files anyway."),
    click.option("--min-top1-agreement", type=click.FloatRange(0, 1), metavar="X",
                 help="Fail when the share of rows whose argmax agrees with the float model's is below X (0..1)."),
    click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout (nothing else)."),
])


kernel_options = _grouped("kernel", dict, [
    click.option("--dtype", type=LibraryChoice("lion_export.dtypes", "KERNEL_DTYPES", "DTYPE"), default="fp16",
                 show_default=True, help="Element type of q, k, v, y: fp16, bf16 or fp32."),
    click.option("--head-dim", type=int, default=64, show_default=True, metavar="N",
                 help="dk, the query/key head dim."),
    click.option("--head-dim-v", type=int, metavar="N", help="dv, the value head dim (default: --head-dim)."),
    click.option("--chunk-size", type=int, default=64, show_default=True, metavar="N",
                 help="Chunk size of the chunked kernels (fp32 above head dim 64 runs at most 32; the manifest says "
                      "which)."),
    click.option("--normalize/--no-normalize", default=True, show_default=True,
                 help="Divide by the LION normaliser (vision models) or not (MLM)."),
    click.option("--eps", type=float, default=1e-6, show_default=True, metavar="X",
                 help="The normaliser's eps (baked into the PTX)."),
])


def _quantize_options(**values: Any) -> Any:
    from lion_export.quantize import QuantizeOptions

    return QuantizeOptions(**values)


quantize_options = _grouped("choices", _quantize_options, [
    click.option("--method", type=LibraryChoice("lion_export.quantize", "CALIBRATION_METHODS", "METHOD"),
                 default="minmax", show_default=True, help="Calibration: minmax, entropy or percentile."),
    click.option("--op-types", type=CommaList(LibraryChoice("lion_export.quantize", "LINEAR_OP_TYPES", "OP")),
                 default="Conv,MatMul,Gemm", show_default=True, help="Linear layers to quantize, by op type."),
    click.option("--exclude-blocks", type=CommaList(Count(min=0)), default=(), metavar="N,N",
                 help="Blocks kept in float, for accuracy."),
    click.option("--shared-block-scales", is_flag=True,
                 help="One activation scale per role for every block (the widest block's): TensorRT-RTX INT8 engines "
                      "get smaller (identical blocks share compiled code); narrower blocks get a coarser step."),
])

__all__ = ["checkpoint_options", "read_checkpoint", "ParityOptions", "parity_options", "kernel_options",
           "quantize_options"]
