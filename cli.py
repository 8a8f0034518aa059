"""The `lion-export` command: checkpoint -> ONNX (+ verification), and the tools around it.

Imported as `lion_export.cli` (lion_export/cli.py is a symlink to this file). Each command parses its options
(click types, lion_export.command_line's option groups), calls the library, where the work lives, and prints.
`lion-export model.pt ...` means `lion-export export model.pt ...`, the main job.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import click

from lion_export import __version__
from lion_export.command_line.errors import errors, fail
from lion_export.command_line.group import DefaultGroup
from lion_export.command_line.options import (ParityOptions, checkpoint_options, kernel_options, parity_options,
                                              quantize_options, read_checkpoint)
from lion_export.command_line.steps import build_and_report, verify_and_report
from lion_export.command_line.param_types import (POSITIVE, ArtefactPath, CommaList, Count, LibraryChoice,
                                                  LibraryParsed)
from lion_export.console_output import CountedProgress, output_console
from lion_export.output_targets import output_targets
from lion_export.progress import phases

DTYPE = LibraryChoice("lion_export.dtypes", "GRAPH_DTYPES", "DTYPE")
DEBUG = click.option("--debug", is_flag=True, help="Show tracebacks.")
_profile_range = partial(LibraryParsed, "lion_export.engine.profiles", "parse_range", metavar="MIN,OPT,MAX")


@click.group(cls=DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lion-export")
def main() -> None:
    """Export LION linear-attention models to ONNX / TensorRT and prove parity with eager PyTorch.

    \b
    lion-export model.pt --mode recurrent      # = lion-export export model.pt --mode recurrent
    """


@main.command("export")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--mode", type=LibraryChoice("lion_export.forms", "FORMS", "MODE"), default="chunked", show_default=True,
              help="Graph form: chunked (standard ops, fast), recurrent (one lion.SelectiveScan node per LION pass, "
                   "backed by a local function) or parallel (full masked attention, the baseline).")
@click.option("--scan-op", type=LibraryChoice("lion_export.scan_op", "SCAN_OPS", "OP"), default="lion",
              show_default=True, help="Recurrent form: lion.SelectiveScan (lion) or LinearAttention (onnx, opset 27+).")
@click.option("--chunk-size", type=POSITIVE, default=64, show_default=True, help="Chunk size of the chunked form.")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Output .onnx file (default: CHECKPOINT with the suffix .onnx; missing folders are created).")
@click.option("--dtype", type=LibraryChoice("lion_export.dtypes", "EXPORT_DTYPES", "DTYPE"), default="fp32",
              show_default=True, help="fp32, fp16 (fp16 graph; decay sums and exponentials stay fp32 inside) or int8 "
                                      "(the fp32 export, then quantized to OUTPUT.int8.onnx; needs --calibration).")
@click.option("--calibration", type=click.Path(dir_okay=False, path_type=Path), metavar="DATA",
              help="With --dtype int8: calibration inputs, an .npz as verify --load-inputs reads.")
@click.option("--opset", type=int, metavar="N", help="Standard ONNX opset (default: the newest onnxruntime supports).")
@click.option("--batch", type=POSITIVE, default=2, show_default=True, help="Batch size of the traced example input.")
@click.option("--seq-len", type=POSITIVE,
              help="Tokens in the traced example (text models, default min(128, max_len); vision models without a "
                   "position embedding: traced at the most nearly square image with that many tokens).")
@click.option("--static", is_flag=True, help="Freeze batch and sequence axes to the example's sizes.")
@click.option("--no-verify", is_flag=True, help="Skip the parity check against eager PyTorch.")
@click.option("--report", "report_path", type=click.Path(path_type=Path),
              help="Write the parity report as JSON here (and an error histogram PNG next to it).")
@click.option("--engine", "engine_path", is_flag=False, flag_value="", default=None, metavar="[PATH]",
              help="After a passing verification, build a TensorRT engine too (default: the .onnx as .engine).")
@parity_options
@checkpoint_options
@click.option("--quiet", is_flag=True, help="Print one line: the file written and the parity verdict.")
@DEBUG
def export_command(checkpoint: Path, mode: str, scan_op: str, chunk_size: int, output: Path | None, dtype: str,
                   calibration: Path | None, opset: int | None, batch: int, seq_len: int | None, static: bool,
                   no_verify: bool, report_path: Path | None, engine_path: str | None, parity: ParityOptions,
                   reading: Any, quiet: bool, debug: bool) -> None:
    """Export CHECKPOINT to ONNX, then verify it against eager PyTorch (exit 1 if parity fails).

    \b
    lion-export model.pt --mode recurrent
    lion-export model.pt --mode chunked --chunk-size 64 -o out/model.onnx --dtype fp16
    lion-export model.pt --mode recurrent --engine          # export, verify, build model.engine
    lion-export model.pt --dtype int8 --calibration data.npz # model.onnx verified, then model.int8.onnx
    """
    from rich.console import Console

    from lion_export.artefacts import ENGINE_SUFFIX, ONNX_SUFFIX
    from lion_export.export import export_onnx, resolve_opset

    if no_verify and report_path is not None:
        fail("--report needs the parity check: drop --no-verify")
    if (dtype == "int8") != (calibration is not None):
        fail("--dtype int8 needs --calibration DATA.npz (real inputs), and --calibration goes with --dtype int8")
    output = checkpoint.with_suffix(ONNX_SUFFIX) if output is None else output
    quantized = output.with_suffix(".int8.onnx") if dtype == "int8" else None
    built = quantized or output
    engine = None if engine_path is None else (Path(engine_path) if engine_path else built.with_suffix(ENGINE_SUFFIX))
    console = Console(stderr=True, quiet=quiet or parity.as_json)
    say = lambda line: console.print(line, highlight=False, markup=False, soft_wrap=True)  # noqa: E731
    targets = {"-o": output, "--dtype int8": quantized, "--report": report_path, "--engine": engine,
               **parity.targets()}
    with errors(debug, "export"), output_targets(targets):
        opset = resolve_opset(opset)
        with phases(console, "loading the checkpoint") as step:
            model = read_checkpoint(checkpoint, reading, quiet, say)
            export_onnx(model, output, form=mode, chunk_size=chunk_size, dtype="fp32" if quantized else dtype,
                        opset=opset, static=static, batch=batch, seq_len=seq_len, checkpoint_path=checkpoint,
                        progress=step, scan_op=scan_op)
        say(f"wrote {output} ({mode}, {'fp32' if quantized else dtype}, opset {opset})")
        if no_verify:
            if quiet:
                click.echo(f"wrote {output} (not verified)")
        else:
            from lion_export.verify import verify_onnx

            verify_and_report(lambda: verify_onnx(model, output, progress=not (quiet or parity.as_json), batch=batch,
                                                  checkpoint_path=checkpoint, **parity.for_checkpoint()),
                              output, report_path, parity.as_json, quiet, debug, "wrote {file}; parity {verdict}")
        if quantized is not None:
            from lion_export.quantize import quantize_npz

            with errors(debug, "quantization"), phases(console, "quantizing") as step:
                result = quantize_npz(output, quantized, calibration, progress=step)
            (click.echo if quiet else say)(result.describe())
        if engine is not None:
            from lion_export.engine.build import BuildOptions

            build_and_report(built, engine, BuildOptions(), quiet, debug)


@main.command()
@click.argument("first", metavar="A", type=ArtefactPath())
@click.argument("second", metavar="B", type=ArtefactPath())
@click.option("--seq-lens", type=CommaList(click.IntRange(min=2)), metavar="N,N,...",
              help="Token counts, e.g. 17,197,1024 (default: trace length, another, one not a multiple of the "
                   "chunk size).")
@click.option("--batch", type=POSITIVE, default=2, show_default=True, help="Batch size of generated inputs.")
@click.option("--dtype", type=DTYPE, help="The checked file's precision, fp32 or fp16 (default: read from the .onnx; "
                                          "engines: fp32).")
@click.option("--report", "report_path", type=click.Path(path_type=Path),
              help="Write the JSON report here (and an error histogram PNG next to it).")
@click.option("--optimization", type=LibraryChoice("lion_export.runners.onnx_runtime", "OPTIMIZATION_LEVELS",
                                                "LEVEL"),
              default="all", show_default=True,
              help="onnxruntime graph optimisation level: all, extended, basic or disable.")
@click.option("--checkpoint", "checkpoint_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Two files: the checkpoint they came from, to calibrate the bound (default: one beside them "
                   "whose sha256 their metadata records; else the fixed table, as a last resort).")
@parity_options
@checkpoint_options
@click.option("--quiet", is_flag=True, help="Print only the verdict.")
@DEBUG
def verify(first: Path | str, second: Path | str, seq_lens: tuple[int, ...] | None, batch: int, dtype: str | None,
           report_path: Path | None, optimization: str, checkpoint_file: Path | None, parity: ParityOptions,
           reading: Any, quiet: bool, debug: bool) -> None:
    """Prove B computes what A computes; exit 1 on a parity failure.

    \b
    A and B are each a checkpoint (.pt, .safetensors, ...), an .onnx file, a TensorRT engine (.engine, .plan) or
    a model on a Triton server (triton://HOST:PORT/MODEL over HTTP, triton+grpc://HOST:PORT/MODEL over gRPC):
    lion-export verify model.pt model.onnx             # eager PyTorch (float64) vs onnxruntime
    lion-export verify model.fp32.onnx model.fp16.onnx # two files on the same inputs, the first the reference
    lion-export verify model.pt triton://127.0.0.1:8000/model   # the served model
    """
    from lion_export.verify import verify_files, verify_onnx
    from lion_export.artefacts import artefact_kind

    kinds = (artefact_kind(first), artefact_kind(second))
    if kinds == ("checkpoint", "checkpoint"):
        fail(f"{first} and {second} are both checkpoints; compare one with an .onnx / engine file, or two files")
    options = dict(seq_lens=None if seq_lens is None else list(seq_lens), batch=batch, dtype=dtype,
                   optimization=optimization, progress=not (quiet or parity.as_json))
    if "checkpoint" in kinds:
        if checkpoint_file is not None:
            fail("--checkpoint is for two files; here the checkpoint is one of A and B (drop it)")
        checkpoint, checked = (first, second) if kinds[0] == "checkpoint" else (second, first)

        def check() -> Any:
            model = read_checkpoint(checkpoint, reading, quiet or parity.as_json)
            return verify_onnx(model, checked, checkpoint_path=checkpoint, **options, **parity.for_checkpoint())
    else:
        checked = second
        if parity.per_block:
            fail("--per-block compares a file with its checkpoint's blocks: give the checkpoint as A")

        def check() -> Any:
            model = checkpoint_file and read_checkpoint(checkpoint_file, reading, quiet or parity.as_json)
            return verify_files(first, second, model=model, checkpoint_path=checkpoint_file, **options,
                                **parity.for_files())
    with errors(debug, "verification"), output_targets({"--report": report_path, **parity.targets()}):
        verify_and_report(check, checked, report_path, parity.as_json, quiet, debug, "parity {verdict}: {file}")


@main.command("build")
@click.argument("onnx_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Engine file (default: ONNX_FILE with the suffix .engine).")
@click.option("--batch", type=_profile_range("--batch"),
              help="Batch range of the engine (or one N); default: 1, the traced batch B, max(8, B).")
@click.option("--seq-len", type=_profile_range("--seq-len"),
              help="Tokens (default: 1, the trace length, max_len); vision models: images of that many tokens.")
@click.option("--image-size", type=LibraryParsed("lion_export.engine.profiles", "parse_image_sizes",
                                                      metavar="HxW,HxW,HxW"),
              help="Vision models without a position embedding: min, opt, max image (or one HxW).")
@click.option("--arch", metavar="LIST", help="TensorRT-RTX targets, e.g. sm_86,sm_89 (default: every target an fp32 "
                                             "graph builds for: sm_80,sm_86,sm_89,sm_120,sm_121).")
@click.option("--no-plugin", is_flag=True, help="Inline the SelectiveScan local function instead of binding the "
                                                "lion::SelectiveScan plugin (for runtimes without the plugin).")
@click.option("--aot", "aot", is_flag=True, help="Standard TensorRT >= 10.9: bind the AOT plugin, whose PTX the "
                                                 "engine embeds, so it runs under trtexec / C++ without Python.")
@click.option("--kernels", "kernel_dirs", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              metavar="DIR", help="With --aot: `compile-kernels` folders to take the PTX from (else compiled now).")
@click.option("--workspace", type=POSITIVE, metavar="MiB", help="Builder workspace limit in MiB (default: TensorRT's).")
@click.option("--timing-cache", type=click.Path(path_type=Path), metavar="PATH",
              help="Read / update this timing cache (standard TensorRT; TensorRT-RTX has none).")
@click.option("--report", "report_path", type=click.Path(path_type=Path),
              help="Build report JSON (default: beside the engine, MODEL.build.json).")
@click.option("--quiet", is_flag=True, help="Print one line: the engine written.")
@click.option("--debug", is_flag=True, help="Show TensorRT's log and tracebacks.")
def build_command(onnx_file: Path, output: Path | None, batch: Any, seq_len: Any, image_size: Any, arch: str | None,
                  no_plugin: bool, aot: bool, kernel_dirs: tuple[Path, ...], workspace: int | None,
                  timing_cache: Path | None, report_path: Path | None, quiet: bool, debug: bool) -> None:
    """Build a TensorRT engine from a lion-export ONNX file (TensorRT-RTX builds without a GPU).

    \b
    lion-export build model.onnx                                  # -> model.engine + model.build.json
    lion-export build model.onnx --seq-len 1,512,4096 --arch sm_89
    """
    from lion_export.artefacts import ENGINE_SUFFIX
    from lion_export.engine.build import BuildOptions
    from lion_export.engine.profiles import ProfileOptions

    if kernel_dirs and not aot:
        fail("--kernels goes with --aot")
    engine = onnx_file.with_suffix(ENGINE_SUFFIX) if output is None else output
    targets = {"-o": engine, "--report": report_path, "--timing-cache": timing_cache}
    with errors(debug, "engine build"), output_targets(targets):
        options = BuildOptions(profiles=ProfileOptions(batch, seq_len, image_size), arch=arch,
                               use_plugin=not no_plugin, aot_kernels=tuple(kernel_dirs) if aot else None,
                               workspace_mib=workspace, timing_cache=timing_cache, report_path=report_path)
        build_and_report(onnx_file, engine, options, quiet, debug)


@main.command("run")
@click.argument("engine_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--inputs", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="inputs.npz with one array per engine input.")
@click.option("--outputs", type=click.Path(path_type=Path), help="Write the outputs here (.npz).")
@DEBUG
def run_command(engine_file: Path, inputs: Path, outputs: Path | None, debug: bool) -> None:
    """Run a TensorRT engine on inputs.npz (needs a CUDA GPU and the TensorRT that built it)."""
    import numpy as np

    from lion_export.atomic import atomic_output
    from lion_export.engine.header import read_engine_header
    from lion_export.runners.trt_engine import TensorRTRunner, output_lines
    from lion_export.verify.case_inputs import load_inputs

    with errors(debug, "engine run"), output_targets({"--outputs": outputs}):
        read_engine_header(engine_file)
        with TensorRTRunner(engine_file) as runner:
            results = runner.infer(load_inputs(inputs, runner.input_specs()))
            described = runner.describe()
        if outputs is not None:
            with atomic_output(outputs) as tmp, open(tmp, "wb") as handle:
                np.savez(handle, **results)
    click.echo("\n".join([f"ran {described}", *output_lines(results)]))
    if outputs is not None:
        click.echo(f"wrote {outputs}")


@main.command("convert")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="The lion-export checkpoint to write: NAME.pt, or NAME.safetensors (+ NAME.json).")
@checkpoint_options
@click.option("--quiet", is_flag=True, help="Print only the file written.")
@DEBUG
def convert(checkpoint: Path, output: Path, reading: Any, quiet: bool, debug: bool) -> None:
    """Rewrite CHECKPOINT (a public LION state_dict, say) as a lion-export checkpoint with its config, so that
    later commands read it with no options."""
    from lion_export.checkpoints import save_checkpoint, save_safetensors

    if output.suffix not in (".pt", ".safetensors"):
        fail(f"-o {output}: the output must end in .pt or .safetensors")
    if output.resolve() == checkpoint.resolve():
        fail(f"-o {output} is the input file; write the conversion to another name")
    with errors(debug, "conversion"), output_targets({"-o": output}):
        model = read_checkpoint(checkpoint, reading, quiet)
        written = save_safetensors(model, output) if output.suffix == ".safetensors" else (
            save_checkpoint(model, output),)
    click.echo(f"wrote {' + '.join(str(p) for p in written)}")


@main.command("quantize")
@click.argument("model_file", metavar="MODEL", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--calibration", type=click.Path(dir_okay=False, path_type=Path), metavar="DATA",
              help="Calibration inputs: an .npz as verify --load-inputs reads (required: never noise).")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="INT8 file (default: MODEL.int8.onnx).")
@quantize_options
@DEBUG
def quantize_command(model_file: Path, calibration: Path | None, output: Path | None, choices: Any,
                     debug: bool) -> None:
    """INT8 QDQ file (opset 19) of a float export: its linear layers quantized, the LION mixer kept fp32."""
    from lion_export.quantize import quantize_npz

    output = model_file.with_suffix(".int8.onnx") if output is None else output
    with errors(debug, "quantization"), output_targets({"-o": output}), phases(output_console(True), "reading") as step:
        result = quantize_npz(model_file, output, calibration, choices, progress=step)
    click.echo(result.describe())


@main.command("inspect")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@DEBUG
def inspect_command(file: Path, as_json: bool, debug: bool) -> None:
    """Show what FILE holds. FILE is an .onnx file (metadata, op histogram, dynamic axes, custom nodes, local
    functions) or a TensorRT engine, .engine / .plan / .trt (what its header says, no GPU needed, and its build
    report)."""
    import json

    from lion_export.artefacts import artefact_kind

    with errors(debug, "inspect"):
        if artefact_kind(file) == "engine":
            from lion_export.engine.header import read_engine_header
            from lion_export.build_record import read_build_record
            from lion_export.engine.build_report import print_engine_summary

            header, build = read_engine_header(file), read_build_record(file)
            data, show = {"header": header.to_dict(), "build_report": build}, partial(print_engine_summary, header,
                                                                                     build)
        else:
            from lion_export.graph_summary import print_summary, summarize

            summary = summarize(file)
            data, show = summary.to_dict(), partial(print_summary, summary)
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        show(output_console())


@main.command("compile-kernels")
@click.option("--arch", required=True, metavar="SM",
              help="GPU target, e.g. sm_87 (Jetson Orin); an unknown one lists the others.")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), metavar="DIR",
              help="Directory for the .ptx/.cubin files and manifest.json (created if missing).")
@kernel_options
@click.option("--ptx-version", default="8.0", show_default=True, metavar="X.Y",
              help="PTX ISA version: 8.0 loads on every CUDA 12+ driver (JetPack 6 included); newer needs newer.")
@DEBUG
def compile_kernels_command(arch: str, out_dir: Path, kernel: dict[str, Any], ptx_version: str, debug: bool) -> None:
    """Compile the Triton kernels ahead of time for one GPU (no GPU needed): PTX, cubin and a launch manifest."""
    import itertools

    from lion_export.kernels.aot.bundle import write_kernel_bundle
    from lion_export.kernels.aot.compiler import KernelCompileError, compile_kernels
    from lion_export.kernels.aot.cuda_targets import check_ptx_version, parse_ptx_version, ptx_version_text, target
    from lion_export.kernels.aot.specs import KernelConfig, kernel_specs

    with errors(debug, "kernel compilation", failed=(KernelCompileError,)), output_targets({}, {"--out": out_dir}):
        gpu = target(arch)
        ptx = parse_ptx_version(ptx_version)
        check_ptx_version(gpu, ptx)
        config = KernelConfig(**kernel)
        total, done = len(kernel_specs(config)), itertools.count(1)
        with CountedProgress(f"compiling for {gpu.name}") as progress:
            kernels = compile_kernels(gpu.name, config, ptx_version=ptx,
                                      progress=lambda name: progress.update(name, next(done), total))
        manifest_path = write_kernel_bundle(out_dir, kernels, config)
    click.echo("\n".join(kernel.describe() for kernel in kernels))
    click.echo(f"wrote {len(kernels)} kernels for {gpu.name} (PTX {ptx_version_text(ptx)}) to {manifest_path.parent} "
               f"(see {manifest_path.name})")


@main.command("bench")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--modes", type=CommaList(LibraryChoice("lion_export.forms", "FORMS", "MODE")),
              default="parallel,chunked,recurrent", show_default=True, help="LION forms to time.")
@click.option("--backends", type=CommaList(LibraryChoice("lion_export.bench", "RUNTIMES", "BACKEND")),
              default="eager,onnxruntime,tensorrt", show_default=True,
              help="Backends; an absent one (tensorrt without a GPU) is reported as skipped.")
@click.option("--seq-lens", type=CommaList(click.IntRange(min=2)), default="256,1024,4096,16384", show_default=True,
              help="Sequence lengths (tokens).")
@click.option("--batch", type=POSITIVE, default=1, show_default=True)
@click.option("--dtype", type=DTYPE, default="fp32", show_default=True, help="fp32 or fp16.")
@click.option("--threads", type=POSITIVE, default=1, show_default=True,
              help="CPU threads of every backend (1: the least noisy on a shared machine).")
@click.option("--repeats", type=POSITIVE, default=5, show_default=True, help="Timed runs per point (median kept).")
@click.option("--warmup", type=Count(min=0), default=2, show_default=True, help="Untimed runs before them.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0, min_open=True), default=600, show_default=True,
              metavar="S", help="Seconds one point may take before it is recorded as a timeout.")
@click.option("--no-softmax", is_flag=True, help="Leave out the softmax-attention baseline.")
@click.option("--out", "out_dir", default=".", show_default=True, type=click.Path(path_type=Path), metavar="DIR",
              help="Directory for bench.json and bench.png.")
@checkpoint_options
@DEBUG
def bench_command(checkpoint: Path, modes: tuple[str, ...], backends: tuple[str, ...], seq_lens: tuple[int, ...],
                  batch: int, dtype: str, threads: int, repeats: int, warmup: int, timeout_s: float,
                  no_softmax: bool, out_dir: Path, reading: Any, debug: bool) -> None:
    """Latency and peak memory of CHECKPOINT's forms per backend vs sequence length: bench.json + bench.png.

    \b
    lion-export bench model.pt --seq-lens 256,1024,4096 --backends eager,onnxruntime --out results/
    """
    from lion_export.bench import BenchRequest, run_bench, series_lines

    request = BenchRequest(checkpoint=checkpoint, forms=modes, backends=backends, seq_lens=seq_lens, batch=batch,
                           dtype=dtype, threads=threads, repeats=repeats, warmup=warmup, point_timeout_s=timeout_s,
                           softmax_baseline=not no_softmax, out=out_dir)
    with errors(debug, "bench"), output_targets({}, {"--out": out_dir}), CountedProgress("bench") as progress:
        request.check()
        document = run_bench(request, progress.update, model=read_checkpoint(checkpoint, reading, quiet=False))
    click.echo("\n".join(series_lines(document)))
    click.echo(f"wrote {out_dir / 'bench.json'} and {out_dir / 'bench.png'} in {document['seconds']:.0f} s")


@main.command("triton-repo")
@click.argument("artefacts", metavar="ARTEFACT...", nargs=-1, required=True, type=click.Path(dir_okay=False,
                                                                                          path_type=Path))
@click.option("-o", "--output", "repo", required=True, type=click.Path(path_type=Path), metavar="REPO",
              help="The model repository folder to write (refused if it holds anything, unless --overwrite).")
@click.option("--backend", type=LibraryChoice("lion_export.serving.model_config", "BACKENDS", "BACKEND"),
              help="onnxruntime, tensorrt or python for every artefact (default: onnxruntime for .onnx, tensorrt "
                   "for an engine that needs no Python plugin, python otherwise).")
@click.option("--max-batch-size", type=Count(min=0), help="Largest batch Triton may form (default: 8, or an engine "
                                                          "profile's largest batch if smaller; 0: no batching).")
@click.option("--dynamic-batching/--no-dynamic-batching", default=True, show_default=True,
              help="Let Triton join requests into batches.")
@click.option("--preferred-batch-sizes", type=CommaList(POSITIVE), metavar="N,N",
              help="Batch sizes the dynamic batcher aims for.")
@click.option("--max-queue-delay-us", type=Count(min=0), default=0, show_default=True,
              help="Microseconds a request may wait for others to join its batch.")
@click.option("--instances", type=POSITIVE, default=1, show_default=True, help="Model instances (instance_group).")
@click.option("--threads", type=POSITIVE, help="onnxruntime threads per instance (python and onnxruntime backends; "
                                               "default: onnxruntime's own, one per core).")
@click.option("--kind", type=LibraryChoice("lion_export.serving.model_config", "KINDS", "KIND"),
              help="cpu or gpu instances (default: gpu for engines or an --accelerator, else cpu).")
@click.option("--accelerator", type=LibraryChoice("lion_export.serving.model_config", "ACCELERATORS", "NAME"),
              help="The onnxruntime backend's GPU execution accelerator: tensorrt or cuda.")
@click.option("--name", "names", multiple=True, metavar="NAME",
              help="Model name, once per artefact in order (default: each file's stem).")
@click.option("--overwrite", is_flag=True, help="Replace REPO if it exists and is not empty.")
@DEBUG
def triton_repo_command(artefacts: tuple[Path, ...], repo: Path, backend: str | None, max_batch_size: int | None,
                        dynamic_batching: bool, preferred_batch_sizes: tuple[int, ...] | None, max_queue_delay_us: int,
                        instances: int, threads: int | None, kind: str | None, accelerator: str | None,
                        names: tuple[str, ...], overwrite: bool, debug: bool) -> None:
    """Write a Triton Inference Server model repository: one model (config.pbtxt + 1/) per ARTEFACT.

    \b
    lion-export triton-repo model.onnx -o repo                     # onnxruntime backend
    lion-export triton-repo model.pt model.onnx -o repo --backend python --name text_pt --name text
    """
    from lion_export.serving.repository import write_repository

    with errors(debug, "triton-repo"), output_targets({}, {"-o": repo}), \
            phases(output_console(True), "checking the options") as step:
        entries = write_repository(artefacts, repo, backend=backend, max_batch_size=max_batch_size,
                                   dynamic_batching=dynamic_batching, preferred_batch_sizes=preferred_batch_sizes or (),
                                   max_queue_delay_us=max_queue_delay_us, instances=instances, kind=kind,
                                   accelerator=accelerator, model_names=names or None, overwrite=overwrite,
                                   progress=step, threads=threads)
    click.echo("\n".join(entry.describe() for entry in entries))
    click.echo(f"wrote {len(entries)} model(s) to {repo}")


@main.command("serve")
@click.argument("repo", metavar="REPO", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--http-port", type=click.IntRange(1, 65535), metavar="P", help="HTTP port (default: a free one).")
@click.option("--grpc-port", type=click.IntRange(1, 65535), metavar="Q", help="gRPC port (default: a free one).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=120, show_default=True, metavar="S",
              help="Seconds to wait for the server to be ready.")
@DEBUG
def serve_command(repo: Path, http_port: int | None, grpc_port: int | None, timeout: float, debug: bool) -> None:
    """Serve REPO on 127.0.0.1 with the tritonserver of the nvidia-pytriton wheel until Ctrl-C (python-backend
    models only: that build has no other backend)."""
    import time

    from lion_export.serving.server import ServerError, TritonServer
    from lion_export.serving.status import status_lines

    with errors(debug, "serve", failed=(ServerError,)):
        with TritonServer(repo, http_port, grpc_port, timeout=timeout) as server:
            click.echo(f"serving {repo} (tritonserver pid {server.pid}): HTTP {server.http_url}, "
                       f"gRPC {server.grpc_url}")
            click.echo("\n".join(status_lines(repo, server.model_states())))
            click.echo("Ctrl-C stops the server", err=True)
            while server.process.poll() is None:
                time.sleep(0.5)
            raise ServerError(f"tritonserver exited with code {server.process.returncode}; its log ends:\n"
                              f"{server.log_tail()}")


if __name__ == "__main__":
    main()
