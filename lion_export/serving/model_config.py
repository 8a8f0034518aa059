"""One model's `config.pbtxt`, built as Triton's own protobuf (`ModelConfig` from tritonclient) and printed with
protobuf's text format, so every field name and enum is checked by the schema the server itself parses.

`ServingOptions` are the settings a user chooses (batching, instances, device, accelerator, onnxruntime threads); `model_config`
checks them against the artefact's signature (a batch axis to batch on, an engine profile's largest batch, a
backend that can run the file) and refuses a contradiction in one line before anything is written.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..runners.feeds import InputSpec
from ..serve_extra import require
from .signature import ArtefactSignature

BACKENDS = ("onnxruntime", "tensorrt", "python")
KINDS = ("cpu", "gpu")
ACCELERATORS = ("tensorrt", "cuda")
#: the python backend's model.py finds its artefact under this config parameter
ARTEFACT_PARAMETER = "artefact"
#: the python backend's model.py passes this config parameter to lion_export.load as `threads`
THREADS_PARAMETER = "threads"
#: the config parameter that sets onnxruntime's threads, by backend (the onnxruntime backend's own name)
THREADS_PARAMETERS = {"python": THREADS_PARAMETER, "onnxruntime": "intra_op_thread_count"}
#: the largest batch a model folder declares when none is asked for (an engine's profile may allow fewer)
DEFAULT_MAX_BATCH = 8


@dataclass(frozen=True)
class ServingOptions:
    """What `triton-repo` lets a user choose; None means the default for the artefact."""

    backend: str | None = None
    max_batch_size: int | None = None
    dynamic_batching: bool = True
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_delay_us: int = 0
    instances: int = 1
    kind: str | None = None
    accelerator: str | None = None
    threads: int | None = None

    def check(self) -> None:
        """ValueError for settings wrong whatever the artefact."""
        for name, value, choices in (("backend", self.backend, BACKENDS), ("kind", self.kind, KINDS),
                                     ("accelerator", self.accelerator, ACCELERATORS)):
            if value is not None and value not in choices:
                raise ValueError(f"unknown {name} {value!r}; choose from {', '.join(choices)}")
        if self.instances < 1 or (self.max_batch_size or 0) < 0 or self.max_queue_delay_us < 0:
            raise ValueError("--instances must be >= 1, --max-batch-size and --max-queue-delay-us >= 0")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        if any(size < 1 for size in self.preferred_batch_sizes):
            raise ValueError("preferred batch sizes must be >= 1")
        if self.accelerator is not None and self.kind == "cpu":
            raise ValueError(f"--accelerator {self.accelerator} runs on a GPU: drop --kind cpu")


def default_backend(signature: ArtefactSignature) -> str:
    """onnxruntime for .onnx, tensorrt for an engine that needs no Python plugin, python for the rest."""
    if signature.kind == "onnx":
        return "onnxruntime"
    if signature.kind == "engine" and not signature.needs_python_plugin:
        return "tensorrt"
    return "python"


def check_backend(signature: ArtefactSignature, backend: str) -> None:
    """ValueError when `backend` cannot run the artefact, naming what can."""
    path = signature.path
    if backend == "onnxruntime" and signature.kind != "onnx":
        raise ValueError(f"{path}: the onnxruntime backend runs .onnx files; use --backend python for a "
                         f"{signature.kind}")
    if backend == "tensorrt":
        if signature.kind != "engine":
            raise ValueError(f"{path}: the tensorrt backend runs engines (lion-export build); use --backend "
                             f"{'onnxruntime' if signature.kind == 'onnx' else 'python'}")
        if signature.needs_python_plugin:
            raise ValueError(f"{path} binds the lion::SelectiveScan plugin that Python registers, which Triton's "
                             "tensorrt backend cannot load: rebuild with --no-plugin or --aot, export --mode "
                             "chunked, or serve it with --backend python")


def _batch_size(signature: ArtefactSignature, options: ServingOptions) -> int:
    """max_batch_size: the asked or default one, 0 for an artefact without a batch axis."""
    asked = options.max_batch_size
    if not signature.batch_axis:
        if asked:
            raise ValueError(f"{signature.path}: its first axis is static (a --static export?), so Triton cannot "
                             "batch it: use --max-batch-size 0")
        return 0
    limit = signature.max_batch
    if asked is not None and limit is not None and asked > limit:
        raise ValueError(f"{signature.path}: --max-batch-size {asked} exceeds the engine profile's largest batch "
                         f"{limit} (rebuild with a wider --batch)")
    return asked if asked is not None else min(DEFAULT_MAX_BATCH, limit or DEFAULT_MAX_BATCH)


def _tensor(entry, spec: InputSpec, batched: bool) -> None:
    utils = require("tritonclient.utils", "tritonclient")
    entry.name = spec.name
    entry.data_type = entry.DESCRIPTOR.fields_by_name["data_type"].enum_type.values_by_name[
        "TYPE_" + utils.np_to_triton_dtype(np.dtype(spec.dtype))].number
    entry.dims.extend(-1 if d is None else d for d in (spec.shape[1:] if batched else spec.shape))


def model_config(name: str, signature: ArtefactSignature, options: ServingOptions, backend: str,
                 artefact_name: str | None = None):
    """The ModelConfig protobuf of one model folder (`artefact_name`: the python backend's file in `1/`)."""
    config_pb2 = require("tritonclient.grpc.model_config_pb2", "tritonclient[grpc]")
    options.check()
    check_backend(signature, backend)
    kind = options.kind or ("gpu" if backend == "tensorrt" or options.accelerator or signature.kind == "engine"
                            else "cpu")
    if backend == "tensorrt" and kind == "cpu":
        raise ValueError("the tensorrt backend runs on a GPU: drop --kind cpu")
    if options.accelerator is not None and backend != "onnxruntime":
        raise ValueError(f"--accelerator sets the onnxruntime backend's execution provider, not the {backend} "
                         "backend's")
    if options.threads is not None and backend not in THREADS_PARAMETERS:
        raise ValueError(f"threads sets onnxruntime's threads per instance, which the {backend} backend does not run")
    config = config_pb2.ModelConfig(name=name)
    if backend == "tensorrt":
        config.platform = "tensorrt_plan"
    else:
        config.backend = backend
    config.max_batch_size = _batch_size(signature, options)
    batched = config.max_batch_size > 0
    for spec in signature.inputs:
        _tensor(config.input.add(), spec, batched)
    for spec in signature.outputs:
        _tensor(config.output.add(), spec, batched)
    if batched and options.dynamic_batching:
        too_big = [n for n in options.preferred_batch_sizes if n > config.max_batch_size]
        if too_big:
            raise ValueError(f"preferred batch sizes {too_big} exceed max_batch_size {config.max_batch_size}")
        config.dynamic_batching.preferred_batch_size.extend(options.preferred_batch_sizes)
        config.dynamic_batching.max_queue_delay_microseconds = options.max_queue_delay_us
    elif options.preferred_batch_sizes:
        raise ValueError("preferred batch sizes need dynamic batching and a max batch size above 0")
    group = config.instance_group.add(count=options.instances)
    group.kind = config_pb2.ModelInstanceGroup.Kind.Value(f"KIND_{kind.upper()}")
    if options.accelerator is not None:
        config.optimization.execution_accelerators.gpu_execution_accelerator.add(name=options.accelerator)
    if artefact_name is not None:
        config.parameters[ARTEFACT_PARAMETER].string_value = artefact_name
    if options.threads is not None:
        # a server's instances share its cores: onnxruntime's default (a spinning thread per core in each
        # instance) makes them and the server's own threads fight over the same cores
        config.parameters[THREADS_PARAMETERS[backend]].string_value = str(options.threads)
    return config


def config_text(config) -> str:
    """The config.pbtxt text of a ModelConfig."""
    from google.protobuf import text_format

    return text_format.MessageToString(config)


__all__ = ["ACCELERATORS", "ARTEFACT_PARAMETER", "BACKENDS", "DEFAULT_MAX_BATCH", "KINDS", "ServingOptions",
           "THREADS_PARAMETER",
           "check_backend", "config_text", "default_backend", "model_config"]
