"""TensorRT plugins (installed as `lion_export.plugins`): the `lion::SelectiveScan` plugin.

TensorRT's ONNX parser binds the recurrent export's `lion.SelectiveScan` node (it carries
`plugin_namespace="lion"`) to the creator registered under that name, version and namespace; the node's other
attributes become the plugin's fields (lion_export.scan_op holds the contract). Two implementations exist:

- `selective_scan`: a class-based IPluginV3 (OneCore/OneBuild/OneRuntime) with an IPluginCreatorV3One creator. It
  builds with TensorRT-RTX (the only plugin kind its parser takes) and standard TensorRT; at run time its enqueue
  launches the Triton scan kernel from Python, so the engine needs Python and this package where it runs.
- `selective_scan_aot`: standard TensorRT >= 10.9 only (`tensorrt.plugin`, `aot_impl`): the engine embeds the
  Triton-compiled PTX and runs without Python (trtexec, C++).

Both register the same (name, version, namespace), so a process registers one of them. This package never decides
which TensorRT is used: the engine layer imports `tensorrt` or `tensorrt_rtx_bindings` and passes the module in.
Nothing here imports TensorRT, torch or Triton at import time.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from lion_export.scan_op import OP_TYPE as PLUGIN_NAME
from lion_export.scan_op import PLUGIN_NAMESPACE, PLUGIN_VERSION


def register(trt_module: ModuleType) -> None:
    """Register the class-based `lion::SelectiveScan` creator with `trt_module`'s plugin registry (the imported
    `tensorrt` or `tensorrt_rtx_bindings`). Idempotent; call it before parsing a recurrent export or deserializing
    an engine built from one. RuntimeError if another creator already holds the name (e.g. the AOT variant)."""
    from lion_export.plugins.selective_scan import register_selective_scan

    register_selective_scan(trt_module)


def register_aot(trt_module: ModuleType, kernel_bundles: Sequence[str | os.PathLike] = ()) -> None:
    """Register the AOT `lion::SelectiveScan` plugin (standard TensorRT >= 10.9 only: `tensorrt.plugin`), so that
    engines built in this process embed the kernel's PTX and run without Python. The PTX comes from the first of
    `kernel_bundles` (`lion-export compile-kernels` folders) made for the build GPU and the node's type, head dims,
    normalize and eps, else Triton compiles it during the build. Idempotent (later bundles are added); RuntimeError
    naming what is missing on any other TensorRT (TensorRT-RTX included), or when `register` already ran here."""
    from lion_export.plugins.selective_scan_aot import register_selective_scan_aot

    register_selective_scan_aot(trt_module, [Path(b) for b in kernel_bundles])


__all__ = ["PLUGIN_NAME", "PLUGIN_NAMESPACE", "PLUGIN_VERSION", "register", "register_aot"]
