"""lion-export: LION bidirectional linear-attention models -> ONNX / TensorRT, with parity proven at each step.

The public names below are imported on first use (PEP 562), not here: `import lion_export` (and so
`lion-export --help`) must not pay for torch. The package is one tree: `lion_export/kernels`, `lion_export/plugins`
and `lion_export/cli.py` are symlinks to the repository's top-level `kernels/`, `plugins/` and `cli.py`.
"""
from __future__ import annotations

from .lazy_names import lazy_names

__version__ = "0.1.0"

_EXPORTS = {
    "lion_attention": "forms",
    "LionAttention": "models", "set_form": "models", "create_model": "models", "PRESETS": "models",
    "VARIANTS": "variants", "get_variant": "variants",
    "CheckpointError": "checkpoints", "save_checkpoint": "checkpoints", "save_safetensors": "checkpoints",
    "load_checkpoint": "checkpoints", "load_state_dict_file": "checkpoints", "checkpoint_sha256": "checkpoints",
    "read_model": "checkpoints", "ReadOptions": "checkpoints",
    "load": "runners", "Session": "runners", "pad_token_ids": "runners", "cast_images": "runners",
}

__all__ = ["__version__", *_EXPORTS]


__getattr__, __dir__ = lazy_names(__name__, globals(), _EXPORTS)
