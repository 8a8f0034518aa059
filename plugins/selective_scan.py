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

# the node's inputs and attribute defaults (a node without an attribute gets the local function's default; the
# parser only warns), from the one definition of the node
from ..export.selective_scan import DEFAULT_EPS, DEFAULT_NORMALIZE, INPUTS
from . import PLUGIN_NAME, PLUGIN_NAMESPACE, PLUGIN_VERSION
#: TensorRT DataType names q, k, v and y may take, in preference order; bf16 only where the module defines it
VALUE_TYPES = ("FLOAT", "HALF", "BF16")
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
        normalize = values.get("normalize", np.array([DEFAULT_NORMALIZE]))
        eps = values.get("eps", np.array([DEFAULT_EPS]))
        if normalize.size != 1 or int(normalize[0]) not in (0, 1):
            raise ValueError(f"SelectiveScan: normalize must be one int, 0 or 1; got {normalize.tolist()}")
        if eps.size != 1:
            raise ValueError(f"SelectiveScan: eps must be one float, got {eps.tolist()}")
        return cls(normalize=bool(int(normalize[0])), eps=float(eps[0]))

    def plugin_fields(self, trt: ModuleType) -> Any:
        """As a PluginFieldCollection: int32 normalize, float32 eps (the types the parser gives the attributes)."""
        return trt.PluginFieldCollection([
            trt.PluginField("normalize", np.array([int(self.normalize)], dtype=np.int32), trt.PluginFieldType.INT32),
            trt.PluginField("eps", np.array([self.eps], dtype=np.float32), trt.PluginFieldType.FLOAT32)])


def field_names(trt: ModuleType) -> Any:
    """The creator's field list: the only node attributes the parser passes on."""
    return trt.PluginFieldCollection([
        trt.PluginField("normalize", np.array([], dtype=np.int32), trt.PluginFieldType.INT32),
        trt.PluginField("eps", np.array([], dtype=np.float32), trt.PluginFieldType.FLOAT32)])


def value_types(trt: ModuleType) -> tuple[Any, ...]:
    """The DataTypes q, k, v and y may take with this TensorRT module."""
    return tuple(getattr(trt.DataType, name) for name in VALUE_TYPES if hasattr(trt.DataType, name))


def supports_combination(trt: ModuleType, pos: int, types: list[Any], formats: list[Any]) -> bool:
    """TensorRT's supports_format_combination rule for position `pos` of (q, k, v, log_decay, y), given the types
    and formats of positions 0..pos: LINEAR everywhere, log_decay fp32, q a value type, k, v, y q's type."""
    if formats[pos] != trt.TensorFormat.LINEAR:
        return False
    if pos == INPUTS.index("log_decay"):
        return types[pos] == trt.DataType.FLOAT
    if pos == 0:
        return types[0] in value_types(trt)
    return types[pos] == types[0]


def workspace_layout(batch: int, heads: int, length: int, dk: int, dv: int) -> tuple[dict[str, tuple[int, tuple]], int]:
    """Where each fp32 scratch buffer of the scan kernel sits in the workspace: {name: (byte offset, shape)} and the
    total bytes, each buffer aligned to WORKSPACE_ALIGNMENT."""
    from ..kernels.aot import ProblemShape
    from ..kernels.scan import scratch_shapes

    layout, offset = {}, 0
    for name, shape in scratch_shapes(ProblemShape(batch, heads, length, dk, dv)).items():
        layout[name] = (offset, shape)
        offset += -(-math.prod(shape) * 4 // WORKSPACE_ALIGNMENT) * WORKSPACE_ALIGNMENT
    return layout, offset


def _check_ranks(ranks: list[int]) -> None:
    if len(ranks) != len(INPUTS) or ranks != [4, 4, 4, 3]:
        got = ", ".join(f"rank {r}" for r in ranks)
        raise ValueError(f"SelectiveScan takes q, k (B, H, L, dk), v (B, H, L, dv), log_decay (B, H, L); got "
                         f"{len(ranks)} inputs ({got})")


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
            _check_ranks([len(d.desc.dims) for d in inputs])
            from ..kernels.aot import ProblemShape
            from ..kernels.scan import scratch_shapes

            dk, dv = inputs[0].max[3], inputs[2].max[3]
            scratch_shapes(ProblemShape(1, 1, 1, dk, dv))   # refuses head dims the kernel does not support

        def get_workspace_size(self, inputs: list[Any], outputs: list[Any]) -> int:
            batch, heads, length, dk = (int(d) for d in inputs[0].max)
            return workspace_layout(batch, heads, length, dk, int(inputs[2].max[3]))[1]

        def get_valid_tactics(self) -> list[int]:
            return []

        # -- runtime
        def on_shape_change(self, inputs: list[Any], outputs: list[Any]) -> None:
            _check_ranks([len(d.dims) for d in inputs])

        def set_tactic(self, tactic: int) -> None:
            """One implementation, so any tactic TensorRT settles on is it."""

        def attach_to_context(self, context: Any) -> SelectiveScanPlugin:
            return self.clone()

        def get_fields_to_serialize(self) -> Any:
            return self.fields.plugin_fields(trt)

        def enqueue(self, input_desc: list[Any], output_desc: list[Any], inputs: list[int], outputs: list[int],
                    workspace: int, stream: int) -> None:
            """Launch the Triton scan kernel on TensorRT's stream, in TensorRT's buffers (runs on a GPU only)."""
            import torch

            from ..kernels.scan import launch_scan
            from .device_buffers import device_tensor, torch_dtype

            batch, heads, length, dk = (int(d) for d in input_desc[0].dims)
            dv = int(input_desc[2].dims[3])
            if batch * heads * length * dv == 0:
                return
            q, k, v, a = (device_tensor(pointer, desc.dims, torch_dtype(desc.type))
                          for pointer, desc in zip(inputs, input_desc))
            y = device_tensor(outputs[0], output_desc[0].dims, torch_dtype(output_desc[0].type))
            layout, _ = workspace_layout(batch, heads, length, dk, dv)
            scratch = {name: device_tensor(workspace + offset, shape, torch.float32)
                       for name, (offset, shape) in layout.items()}
            with torch.cuda.stream(torch.cuda.ExternalStream(stream, device=y.device)):
                launch_scan(q, k, v, a, y, scratch["num_scratch"], scratch["den_scratch"],
                            normalize=self.fields.normalize, eps=self.fields.eps)

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


__all__ = ["ScanFields", "field_names", "plugin_classes",
           "register_selective_scan", "supports_combination", "value_types", "workspace_layout"]
