"""Named model sizes and the one factory that builds every LION model, from a preset or from a config dict.

Presets:
  vit-tiny / vit-small / vit-base : the paper's sizes (dim 192 / 384 / 768, depth 12, heads 3 / 6 / 12),
                                    patch 16, 224 px (197 tokens with the class token), 1000 classes.
  encoder-tiny                    : BERT-tiny's size (dim 128, depth 2, heads 2).
  encoder-base                    : BERT-base's size (dim 768, depth 12, heads 12).
  encoder-large                   : BERT-large's size (dim 1024, depth 24, heads 16; the public LION MLM's large).
  Both encoders: vocabulary 30522 (BERT uncased WordPiece), max_len 512, MLP ratio 4, MLM head on.
Every field of the model's config can be overridden by keyword (mask, depth, img_size, vocab_size, form, ...).
"""
from __future__ import annotations

from typing import Any

from torch import nn

from .config import ModelConfig
from .text import LionTextEncoder, TextConfig
from .vision import LionVisionTransformer, VisionConfig

PRESETS: dict[str, tuple[type[ModelConfig], dict[str, Any]]] = {
    "vit-tiny": (VisionConfig, {"dim": 192, "depth": 12, "num_heads": 3}),
    "vit-small": (VisionConfig, {"dim": 384, "depth": 12, "num_heads": 6}),
    "vit-base": (VisionConfig, {"dim": 768, "depth": 12, "num_heads": 12}),
    "encoder-tiny": (TextConfig, {"dim": 128, "depth": 2, "num_heads": 2}),
    "encoder-base": (TextConfig, {"dim": 768, "depth": 12, "num_heads": 12}),
    "encoder-large": (TextConfig, {"dim": 1024, "depth": 24, "num_heads": 16}),
}

_MODELS: dict[str, tuple[type[ModelConfig], type[nn.Module]]] = {
    VisionConfig.kind: (VisionConfig, LionVisionTransformer),
    TextConfig.kind: (TextConfig, LionTextEncoder),
}


def preset_config(preset: str, **overrides: Any) -> ModelConfig:
    """The config of `preset` with `overrides` applied; unknown presets or fields raise ValueError."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
    config_cls, sizes = PRESETS[preset]
    unknown = sorted(set(overrides) - set(config_cls.field_names()))
    if unknown:
        raise ValueError(f"unknown field(s) {unknown} for preset {preset!r}; "
                         f"valid: {', '.join(config_cls.field_names())}")
    return config_cls(**{**sizes, **overrides})


def create_model(preset: str, **overrides: Any) -> nn.Module:
    """Build a LION model from a preset, e.g. create_model("vit-tiny", mask="selective", num_classes=10).

    The model keeps its config as `model.config` (to_dict() / from_dict()), which is all a checkpoint needs.
    """
    return model_from_config(preset_config(preset, **overrides))


def config_of(model: nn.Module) -> ModelConfig:
    """The config of a LION model (from create_model / load_checkpoint): what saving, exporting and verifying
    read. Any other module is a clear ValueError, not an AttributeError deep inside one of them."""
    config = getattr(model, "config", None)
    if not isinstance(config, ModelConfig) or config.kind not in _MODELS:
        raise ValueError(f"{type(model).__name__} is not a LION model with a vision or text config; build it with "
                         "lion_export.create_model or load it with lion_export.load_checkpoint")
    return config


def model_from_config(config: ModelConfig | dict[str, Any]) -> nn.Module:
    """Rebuild a model from a config object or its to_dict() form ({"model": "vision" | "text", ...})."""
    if isinstance(config, dict):
        kind = config.get("model")
        if kind not in _MODELS:
            raise ValueError(f"config needs a 'model' entry, one of {list(_MODELS)}; got {kind!r}")
        config = _MODELS[kind][0].from_dict(config)
    if not isinstance(config, ModelConfig) or config.kind not in _MODELS:
        raise ValueError(f"expected a model config or its dict, got {type(config).__name__}")
    return _MODELS[config.kind][1](config)


__all__ = ["PRESETS", "preset_config", "create_model", "config_of", "model_from_config"]
