"""lion-export: LION bidirectional linear-attention models -> ONNX / TensorRT, with parity proven at each step."""
from __future__ import annotations

from .checkpoint import (CheckpointError, checkpoint_sha256, load_checkpoint, load_state_dict_file,
                         save_checkpoint, save_safetensors)
from .forms import lion_attention
from .models import PRESETS, LionAttention, create_model, set_form
from .variants import VARIANTS, get_variant

__version__ = "0.1.0"

__all__ = ["__version__", "lion_attention", "LionAttention", "set_form", "create_model", "PRESETS", "VARIANTS",
           "get_variant", "CheckpointError", "save_checkpoint", "save_safetensors", "load_checkpoint",
           "load_state_dict_file", "checkpoint_sha256"]
