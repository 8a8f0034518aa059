"""lion-export: LION bidirectional linear-attention models -> ONNX / TensorRT, with parity proven at each step."""
from __future__ import annotations

from .forms import lion_attention

__version__ = "0.1.0"

__all__ = ["__version__", "lion_attention"]
