"""ONNX export of LION models: the pipeline (onnx_export), the recurrent form's custom node (selective_scan) and
its rewrite as standard LinearAttention nodes (linear_attention), the graph interface (signature), metadata and
opset policy. Imports onnx; nothing upstream imports this package."""
from __future__ import annotations

from .onnx_export import ExportError, export_onnx
from .opsets import DEFAULT_OPSET, MIN_OPSET, OpsetError, resolve_opset
from .selective_scan import route_recurrent_to_selective_scan, selective_scan_function

__all__ = ["ExportError", "export_onnx", "DEFAULT_OPSET", "MIN_OPSET", "OpsetError",
           "resolve_opset", "route_recurrent_to_selective_scan", "selective_scan_function"]
