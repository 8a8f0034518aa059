"""ONNX graph -> serialized TensorRT engine: parse, configure (profiles, targets, workspace), build, write.

The steps are the ones Polygraphy's TensorRT loaders compose (network from ONNX, builder config, profiles,
serialize), in one function because `build` always runs all of them. Everything that can be refused is refused
before TensorRT is imported: the output path, the file (graph_file), the profiles and the targets. Parsing binds
each `lion.SelectiveScan` node to the `lion::SelectiveScan` plugin (registered first) or, with use_plugin=False,
inlines its local function. The engine and its report are written atomically: a failed build leaves no file.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import atomic_output, write_bytes_atomically
from ..build_record import build_record_path
from ..checkpoints import checkpoint_sha256
from ..output_targets import output_targets
from ..scan_op import PLUGIN_ID, PLUGIN_VERSION
from .backend import Backend, collecting_logger, load_backend, register_plugin
from .graph_file import LionGraph, load_lion_graph
from .profiles import InputProfile, ProfileOptions, input_profiles
from .build_progress import PhaseDisplay, SilentDisplay, progress_monitor
from .build_report import BuildReport
from .rtx_targets import TargetError, parse_targets

PLUGIN_LABEL = f"{PLUGIN_ID} v{PLUGIN_VERSION}"
AOT_LABEL = f"{PLUGIN_LABEL} (AOT: PTX in the engine)"


class BuildError(RuntimeError):
    """TensorRT itself failed to build a file that passed every check (not the user's input: exit 1)."""


class ParseError(ValueError):
    """TensorRT's ONNX parser refused the file."""


class UnsupportedOpError(ValueError):
    """The file holds an op this TensorRT cannot build (found in the graph, before the parser runs)."""


# TensorRT-RTX builds plugin engines, but its porting guide says its runtime does not support plugins (an open
# issue on NVIDIA's TensorRT-RTX repository), and no such engine has been run by this project: say so at build time.
RTX_PLUGIN_WARNING = ("TensorRT-RTX built this engine with plugin layers, but its runtime is documented not to "
                      "support plugins and no such engine has been run here: for an engine that needs no plugin, "
                      "rebuild with --no-plugin or export the chunked form (--mode chunked)")


@dataclass
class BuildOptions:
    """Everything `lion-export build` can set; the defaults are the command's."""

    profiles: ProfileOptions = field(default_factory=ProfileOptions)
    arch: str | None = None                   # --arch list (TensorRT-RTX); None = every target that builds
    use_plugin: bool = True
    aot_kernels: tuple[Path, ...] | None = None   # standard TensorRT: the AOT plugin (PTX in the engine), with these
                                                  # compile-kernels bundles; None = the class-based plugin
    workspace_mib: int | None = None
    timing_cache: Path | None = None
    report_path: Path | None = None           # None = MODEL.build.json beside the engine
    verbose_log: Any = None                   # a callable taking TensorRT's log lines (--debug), or None


def _parse(trt: Any, backend: Backend, graph: LionGraph, options: BuildOptions,
           logger: Any) -> tuple[Any, Any, Any]:
    builder = trt.Builder(logger)
    flags = 0
    creation = getattr(trt, "NetworkDefinitionCreationFlag", None)
    if not backend.is_rtx and creation is not None and hasattr(creation, "STRONGLY_TYPED"):
        flags |= 1 << int(creation.STRONGLY_TYPED)  # TensorRT 10: opt-in; TensorRT 11 / RTX: always strongly typed
    aot = graph.scan_nodes and options.use_plugin and options.aot_kernels is not None
    if aot and hasattr(creation, "PREFER_AOT_PYTHON_PLUGINS"):
        flags |= 1 << int(creation.PREFER_AOT_PYTHON_PLUGINS)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if aot:
        from lion_export import plugins

        plugins.register_aot(trt, options.aot_kernels)
        ok = parser.parse_from_file(str(graph.path))
    elif graph.scan_nodes and options.use_plugin:
        register_plugin(backend)
        ok = parser.parse_from_file(str(graph.path))
    elif graph.scan_nodes:
        ok = parser.parse(graph.without_plugin_binding(), str(graph.path))
    else:
        ok = parser.parse_from_file(str(graph.path))
    if not ok:
        errors = [" ".join(str(parser.get_error(i)).split()) for i in range(parser.num_errors)] or logger.errors
        raise ParseError(f"{graph.path}: TensorRT's ONNX parser refused it: {errors[0] if errors else 'no reason'}"
                         + (f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""))
    return builder, network, parser


def _layer_counts(network: Any) -> Counter:
    return Counter(network.get_layer(i).type.name for i in range(network.num_layers))


def _configure(trt: Any, backend: Backend, builder: Any, network: Any, profiles: list[InputProfile],
               targets: list, options: BuildOptions, display: PhaseDisplay) -> tuple[Any, Any]:
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    names = {network.get_input(i).name for i in range(network.num_inputs)}
    for entry in profiles:
        if entry.name in names:
            profile.set_shape(entry.name, entry.min, entry.opt, entry.max)
    config.add_optimization_profile(profile)
    if backend.is_rtx:
        config.num_compute_capabilities = len(targets)
        for index, target in enumerate(targets):
            config.set_compute_capability(getattr(trt.ComputeCapability, target.enum_name), index)
    if options.workspace_mib is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib * 2**20)
    cache = None
    if options.timing_cache is not None and not backend.is_rtx:
        previous = options.timing_cache.read_bytes() if options.timing_cache.is_file() else b""
        cache = config.create_timing_cache(previous)
        config.set_timing_cache(cache, False)
    config.progress_monitor = progress_monitor(trt, display)
    return config, cache


def build_engine(onnx_path: str | Path, engine_path: str | Path, options: BuildOptions | None = None,
                 display: PhaseDisplay | None = None) -> BuildReport:
    """Build `onnx_path` into `engine_path` (and its JSON report); returns the report.

    ValueError subclasses (GraphFileError, ProfileError, TargetError, BackendError, ParseError, UnsupportedOpError)
    are bad input or a missing TensorRT; BuildError is TensorRT failing on a file that passed every check.
    """
    options = options or BuildOptions()
    engine_path = Path(engine_path)
    report_path = build_record_path(engine_path) if options.report_path is None else options.report_path
    if options.workspace_mib is not None and options.workspace_mib < 1:
        raise ValueError(f"--workspace must be a positive number of MiB, got {options.workspace_mib}")
    # every file the build writes is checked (its folders made) before a build is spent on it, and folders made
    # for a build that then fails are removed again
    with output_targets({"-o": engine_path, "--report": report_path, "--timing-cache": options.timing_cache}):
        return _build(Path(onnx_path), engine_path, report_path, options, display or SilentDisplay())


def _build(onnx_path: Path, engine_path: Path, report_path: Path, options: BuildOptions,
           display: PhaseDisplay) -> BuildReport:
    graph = load_lion_graph(onnx_path)
    profiles = input_profiles(graph.model, options.profiles)
    backend = load_backend()
    if backend.is_rtx:
        targets = parse_targets(options.arch, graph_dtype=graph.dtype)
        arch = [t.name for t in targets]
    elif options.arch is not None:
        raise TargetError(f"--arch chooses TensorRT-RTX targets; {backend.describe()} builds for this machine's "
                          "GPU only (drop --arch)")
    else:
        targets, arch = [], ["the build machine's GPU"]
    if backend.is_rtx and graph.linear_attention_nodes:
        # TensorRT-RTX 1.7's parser maps LinearAttention to a "LinearAttention" plugin that its wheel does not ship
        raise UnsupportedOpError(f"{graph.path}: {backend.describe()} cannot build the standard LinearAttention op "
                                 f"({graph.linear_attention_nodes} nodes: its parser wants a plugin it does not "
                                 "ship); export the recurrent form with --scan-op lion, or the chunked form "
                                 "(--mode chunked)")
    if options.aot_kernels is not None and (backend.is_rtx or not options.use_plugin):
        raise ValueError("--aot needs standard TensorRT >= 10.9 (module tensorrt) and the plugin; "
                         f"{backend.describe()} runs the class-based plugin (drop --aot)" if backend.is_rtx else
                         "--aot and --no-plugin contradict each other")
    trt = backend.module
    logger = collecting_logger(trt, options.verbose_log)
    started = time.perf_counter()
    try:
        builder, network, _parser = _parse(trt, backend, graph, options, logger)
        parse_seconds = time.perf_counter() - started
        layers = _layer_counts(network)
        config, cache = _configure(trt, backend, builder, network, profiles, targets, options, display)
        serialized = builder.build_serialized_network(network, config)
    finally:
        display.close()
    build_seconds = time.perf_counter() - started
    if serialized is None:
        reason = logger.errors[-1] if logger.errors else "no error was logged"
        raise BuildError(f"{backend.describe()} could not build {graph.path}: {reason}")
    with atomic_output(engine_path) as tmp, open(tmp, "wb") as handle:
        handle.write(memoryview(serialized))
    notes = []
    timing = None
    if options.timing_cache is not None:
        if cache is None:
            notes.append("--timing-cache ignored: timing caches are no-ops in TensorRT-RTX")
            timing = "ignored (TensorRT-RTX)"
        else:
            write_bytes_atomically(options.timing_cache, bytes(memoryview(cache.serialize())))
            timing = str(options.timing_cache)
    plugin_layers = sum(n for kind, n in layers.items() if kind.startswith("PLUGIN"))
    warnings = [RTX_PLUGIN_WARNING] if backend.is_rtx and plugin_layers else []
    plugin = ("none needed (no lion.SelectiveScan nodes)" if not graph.scan_nodes else
              "inlined local function (--no-plugin)" if not options.use_plugin else
              PLUGIN_LABEL if options.aot_kernels is None else AOT_LABEL)
    report = BuildReport(
        backend=backend.edition, version=backend.version, onnx=str(graph.path), engine=str(engine_path),
        mode=graph.form, dtype=graph.dtype, plugin=plugin, scan_nodes=graph.scan_nodes,
        network_layers=network.num_layers, plugin_layers=plugin_layers, layers_by_type=dict(layers.most_common()),
        profiles={p.name: p.to_dict() for p in profiles}, arch=arch, engine_bytes=serialized.nbytes,
        onnx_sha256=checkpoint_sha256(graph.path),
        parse_seconds=round(parse_seconds, 3), build_seconds=round(build_seconds, 3),
        workspace_bytes=None if options.workspace_mib is None else options.workspace_mib * 2**20,
        timing_cache=timing, notes=notes, warnings=warnings)
    report.write_json(report_path)
    return report


__all__ = ["BuildError", "BuildOptions", "ParseError", "UnsupportedOpError", "PLUGIN_LABEL", "AOT_LABEL",
           "RTX_PLUGIN_WARNING", "build_engine"]
