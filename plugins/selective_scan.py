"""The class-based `lion::SelectiveScan` plugin: IPluginV3 (OneCore, OneBuild, OneRuntime) + IPluginCreatorV3One.

This is the plugin kind TensorRT-RTX's ONNX parser accepts, and standard TensorRT takes it too. TensorRT's Python
plugin classes differ per module (`tensorrt` vs `tensorrt_rtx_bindings`), so the classes are made per module by
`plugin_classes(trt)` and cached; the rules they apply (fields, types, workspace) are plain functions below.

The node's contract (lion_export/export/selective_scan.py): inputs q, k (B, H, L, dk), v (B, H, L, dv), log_decay
(B, H, L); attributes normalize (INT -> int32) and eps (FLOAT -> float32); one output y shaped and typed like v.
All tensors LINEAR, q/k/v/y one type (fp32, fp16, or bf16 where the module has it), log_decay fp32. At run time
`enqueue` launches the Triton scan kernel (kernels/scan.py) on TensorRT's stream, reading and writing TensorRT's
buffers in place; its two fp32 scratch buffers come out of the plugin's workspace, so nothing is allocated per call.
The engine stores only the plugin's name and serialized fields: a process that runs it calls `register` first.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any

import numpy as np
import torch

# the node's inputs and attribute defaults (a node without an attribute gets the local function's default; the
# parser only warns), from the one definition of the node
from lion_export.dtypes import DTYPES, KERNEL_DTYPES
from lion_export.plugins import PLUGIN_NAME, PLUGIN_NAMESPACE, PLUGIN_VERSION
from lion_export.scan_op import DEFAULT_EPS, DEFAULT_NORMALIZE, EPS, INPUTS, LOG_DECAY_INPUT, NORMALIZE

#: TensorRT DataType names q, k, v and y may take, in preference order; bf16 only where the module defines it
VALUE_TYPES = tuple(DTYPES[name].tensorrt for name in KERNEL_DTYPES)
#: scratch buffers start at this alignment inside the workspace (what cudaMalloc guarantees)
WORKSPACE_ALIGNMENT = 256

_lock = threading.Lock()
_creators: dict[str, Any] = {}      # module name -> the registered creator (the registry does not keep it alive)


@dataclass(frozen=True)
class ScanFields:
    """The plugin's fields: what the node's attributes say and what the engine serializes."""

    normalize: bool
    eps: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.eps) and self.eps >= 0):
            raise ValueError(f"SelectiveScan: eps must be a finite number >= 0, got {self.eps}")

    @classmethod
    def from_plugin_fields(cls, fields: Any) -> ScanFields:
        """From a PluginFieldCollection (the parser's node attributes or a serialized engine); missing fields take
        the node's defaults, unknown ones are ignored."""
        values = {field.name: np.asarray(field.data).reshape(-1) for field in fields}
        normalize = values.get(NORMALIZE, np.array([DEFAULT_NORMALIZE]))
        eps = values.get(EPS, np.array([DEFAULT_EPS]))
        if normalize.size != 1 or int(normalize[0]) not in (0, 1):
            raise ValueError(f"SelectiveScan: normalize must be one int, 0 or 1; got {normalize.tolist()}")
        if eps.size != 1:
            raise ValueError(f"SelectiveScan: eps must be one float, got {eps.tolist()}")
        return cls(normalize=bool(int(normalize[0])), eps=float(eps[0]))

    def plugin_fields(self, trt: ModuleType) -> Any:
        """As a PluginFieldCollection, typed as the parser types the node's attributes."""
        return _field_collection(trt, {NORMALIZE: [int(self.normalize)], EPS: [self.eps]})


#: field name -> (numpy type, TensorRT PluginFieldType name): the parser gives INT as int32 and FLOAT as float32
_FIELD_TYPES = {NORMALIZE: (np.int32, "INT32"), EPS: (np.float32, "FLOAT32")}


def _field_collection(trt: ModuleType, values: dict[str, list]) -> Any:
    return trt.PluginFieldCollection([
        trt.PluginField(name, np.array(values[name], dtype=dtype), getattr(trt.PluginFieldType, kind))
        for name, (dtype, kind) in _FIELD_TYPES.items()])


def field_names(trt: ModuleType) -> Any:
    """The creator's field list: the only node attributes the parser passes on."""
    return _field_collection(trt, {name: [] for name in _FIELD_TYPES})


def value_types(trt: ModuleType) -> tuple[Any, ...]:
    """The DataTypes q, k, v and y may take with this TensorRT module."""
    return tuple(getattr(trt.DataType, name) for name in VALUE_TYPES if hasattr(trt.DataType, name))


def supports_combination(trt: ModuleType, pos: int, types: list[Any], formats: list[Any]) -> bool:
    """TensorRT's supports_format_combination rule for position `pos` of (q, k, v, log_decay, y), given the types
    and formats of positions 0..pos: LINEAR everywhere, log_decay fp32, q a value type, k, v, y q's type."""
    if formats[pos] != trt.TensorFormat.LINEAR:
        return False
    if pos == LOG_DECAY_INPUT:
        return types[pos] == trt.DataType.FLOAT
    if pos == 0:
        return types[0] in value_types(trt)
    return types[pos] == types[0]


def workspace_layout(batch: int, heads: int, length: int, dk: int, dv: int) -> tuple[dict[str, tuple[int, tuple]], int]:
    """Where each fp32 scratch buffer of the scan kernel sits in the workspace: {name: (byte offset, shape)} and the
    total bytes, each buffer aligned to WORKSPACE_ALIGNMENT."""
    from lion_export.kernels.aot.specs import ProblemShape
    from lion_export.kernels.scan import scratch_shapes

    layout, offset = {}, 0
    for name, shape in scratch_shapes(ProblemShape(batch, heads, length, dk, dv)).items():
        layout[name] = (offset, shape)
        offset += -(-math.prod(shape) * 4 // WORKSPACE_ALIGNMENT) * WORKSPACE_ALIGNMENT
    return layout, offset


def scan_into(fields: ScanFields, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, log_decay: torch.Tensor,
              y: torch.Tensor, workspace: torch.Tensor) -> None:
    """What enqueue does once TensorRT's buffers are tensors: the scratch buffers are views into `workspace` (bytes,
    at least `workspace_layout`'s total) and the scan kernel writes y, on the current stream."""
    from lion_export.kernels.scan import launch_scan

    layout, _ = workspace_layout(*q.shape, v.shape[3])
    scratch = {name: workspace[offset:offset + math.prod(shape) * 4].view(torch.float32).view(shape)
               for name, (offset, shape) in layout.items()}
    launch_scan(q, k, v, log_decay, y, scratch["num_scratch"], scratch["den_scratch"], normalize=fields.normalize,
                eps=fields.eps)


_EXPECTED = "q, k (B, H, L, dk), v (B, H, L, dv), log_decay (B, H, L)"


def _check_ranks(ranks: list[int]) -> None:
    if ranks != [4, 4, 4, 3]:
        got = ", ".join(f"rank {r}" for r in ranks)
        raise ValueError(f"SelectiveScan takes {_EXPECTED}; got {len(ranks)} inputs ({got})")


def check_shapes(shapes: list[tuple[int, ...]]) -> None:
    """The kernel indexes every tensor from (B, H, L, dk, dv) alone: refuse shapes that disagree (ValueError),
    and head dims it does not take. -1 (a dimension not known yet) matches anything."""
    from lion_export.kernels.aot.specs import ProblemShape
    from lion_export.kernels.scan import scratch_shapes

    _check_ranks([len(shape) for shape in shapes])
    q, k, v, a = shapes

    def agree(x: tuple[int, ...], y: tuple[int, ...]) -> bool:
        return all(i == j or -1 in (i, j) for i, j in zip(x, y))

    if not (agree(q, k) and agree(q[:3], v[:3]) and agree(q[:3], a)):
        raise ValueError(f"SelectiveScan takes {_EXPECTED}; got {', '.join(str(tuple(s)) for s in shapes)}")
    if q[3] != -1 and v[3] != -1:
        scratch_shapes(ProblemShape(1, 1, 1, q[3], v[3]))      # refuses head dims the kernel does not support


@cache
def plugin_classes(trt: ModuleType) -> tuple[type, type]:
    """(plugin class, creator class) built on `trt`'s IPluginV3 / IPluginCreatorV3One bases."""

    class SelectiveScanPlugin(trt.IPluginV3, trt.IPluginV3OneCore, trt.IPluginV3OneBuild, trt.IPluginV3OneRuntime):
        """One `lion.SelectiveScan` node: the bidirectional LION recurrence of one mixer."""

        def __init__(self, fields: ScanFields) -> None:
            trt.IPluginV3.__init__(self)
            trt.IPluginV3OneCore.__init__(self)
            trt.IPluginV3OneBuild.__init__(self)
            trt.IPluginV3OneRuntime.__init__(self)
            self.plugin_name = PLUGIN_NAME
            self.plugin_namespace = PLUGIN_NAMESPACE
            self.plugin_version = PLUGIN_VERSION
            self.num_outputs = 1
            self.fields = fields

        # -- core
        def get_capability_interface(self, capability: Any) -> Any:
            return self

        def clone(self) -> SelectiveScanPlugin:
            return SelectiveScanPlugin(self.fields)

        # -- build
        def get_output_data_types(self, input_types: list[Any]) -> list[Any]:
            if len(input_types) != len(INPUTS):
                raise ValueError(f"SelectiveScan takes {len(INPUTS)} inputs (q, k, v, log_decay), got "
                                 f"{len(input_types)}")
            return [input_types[INPUTS.index("v")]]

        def get_output_shapes(self, inputs: list[Any], shape_inputs: list[Any], expr_builder: Any) -> list[Any]:
            _check_ranks([len(dims) for dims in inputs])
            v = inputs[INPUTS.index("v")]
            return [trt.DimsExprs([v[i] for i in range(len(v))])]

        def supports_format_combination(self, pos: int, in_out: list[Any], num_inputs: int) -> bool:
            known = in_out[:pos + 1]
            return supports_combination(trt, pos, [d.desc.type for d in known], [d.desc.format for d in known])

        def configure_plugin(self, inputs: list[Any], outputs: list[Any]) -> None:
            check_shapes([tuple(d.max) for d in inputs])

        def get_workspace_size(self, inputs: list[Any], outputs: list[Any]) -> int:
            batch, heads, length, dk = (int(d) for d in inputs[0].max)
            return workspace_layout(batch, heads, length, dk, int(inputs[2].max[3]))[1]

        def get_valid_tactics(self) -> list[int]:
            return []

        # -- runtime
        def on_shape_change(self, inputs: list[Any], outputs: list[Any]) -> None:
            check_shapes([tuple(d.dims) for d in inputs])

        def set_tactic(self, tactic: int) -> None:
            """One implementation, so any tactic TensorRT settles on is it."""

        def attach_to_context(self, context: Any) -> SelectiveScanPlugin:
            return self.clone()

        def get_fields_to_serialize(self) -> Any:
            return self.fields.plugin_fields(trt)

        def enqueue(self, input_desc: list[Any], output_desc: list[Any], inputs: list[int], outputs: list[int],
                    workspace: int, stream: int) -> None:
            """Launch the Triton scan kernel on TensorRT's stream, in TensorRT's buffers (runs on a GPU only)."""
            from lion_export.plugins.device_buffers import device_tensor, torch_dtype

            if math.prod(input_desc[2].dims) == 0:
                return
            q, k, v, a = (device_tensor(pointer, desc.dims, torch_dtype(desc.type))
                          for pointer, desc in zip(inputs, input_desc))
            y = device_tensor(outputs[0], output_desc[0].dims, torch_dtype(output_desc[0].type))
            scratch_bytes = workspace_layout(*q.shape, v.shape[3])[1]
            # Triton launches on torch's current device and stream: make them TensorRT's
            with torch.cuda.device(y.device), torch.cuda.stream(torch.cuda.ExternalStream(stream, device=y.device)):
                scan_into(self.fields, q, k, v, a, y, device_tensor(workspace, (scratch_bytes,), torch.uint8))

    class SelectiveScanCreator(trt.IPluginCreatorV3One):
        """Makes the plugin from a node's attributes (build) or an engine's serialized fields (runtime)."""

        def __init__(self) -> None:
            trt.IPluginCreatorV3One.__init__(self)
            self.name = PLUGIN_NAME
            self.plugin_namespace = PLUGIN_NAMESPACE
            self.plugin_version = PLUGIN_VERSION
            self.field_names = field_names(trt)

        def create_plugin(self, name: str, fields: Any, phase: Any) -> SelectiveScanPlugin:
            return SelectiveScanPlugin(ScanFields.from_plugin_fields(fields))

    return SelectiveScanPlugin, SelectiveScanCreator


def is_registered(trt: ModuleType) -> bool:
    """Whether `register_selective_scan(trt)` has run in this process."""
    return trt.__name__ in _creators


def register_selective_scan(trt: ModuleType) -> None:
    """Register the creator once per TensorRT module (see lion_export.plugins.register)."""
    with _lock:
        if trt.__name__ in _creators:
            return
        creator = plugin_classes(trt)[1]()
        if not trt.get_plugin_registry().register_creator(creator, PLUGIN_NAMESPACE):
            raise RuntimeError(f"another plugin creator is already registered as {PLUGIN_NAMESPACE}::{PLUGIN_NAME} "
                               f"version {PLUGIN_VERSION} (the AOT variant?); a process can hold only one")
        _creators[trt.__name__] = creator


__all__ = ["ScanFields", "check_shapes", "field_names", "is_registered", "plugin_classes",
           "register_selective_scan", "scan_into", "supports_combination", "value_types", "workspace_layout"]
