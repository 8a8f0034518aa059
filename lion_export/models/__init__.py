"""LION layers and models: the mixer (`LionAttention`), the vision transformer, the text encoder, presets."""
from __future__ import annotations

from .attention import LionAttention, set_form
from .config import ModelConfig
from .presets import PRESETS, config_of, create_model, model_from_config, preset_config
from .text import LionTextEncoder, TextConfig
from .vision import LionVisionTransformer, VisionConfig

__all__ = ["LionAttention", "set_form", "ModelConfig", "PRESETS", "create_model", "config_of", "model_from_config",
           "preset_config", "LionTextEncoder", "TextConfig", "LionVisionTransformer", "VisionConfig"]
