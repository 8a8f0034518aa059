"""Checkpoints trained with the public LION code, read with the architecture inferred from the tensors.

Every command that reads a checkpoint goes through `read_model`, which takes
- a lion-export checkpoint (.pt, or .safetensors + its JSON): loaded as saved, its own config used;
- a plain public state_dict (.pt / .pth / .safetensors without a JSON), vision or MLM;
- the public training scripts' files: {"model", "optimizer", "epoch", "args", "model_ema", ...} (DeiT-style, the
  image code) or Composer's {"state": {"model": ...}} (the MLM code); `weights` picks "model" or "model_ema".
For public files the architecture is read off the tensors (models/vision.py mirrors the public image model's
names and shapes; models/public_mlm.py the MLM layout): width, depth, MLP ratio, patch size, classes from shapes; the
variant from the decay (`a_i` a bare [H] parameter: LION-D; a Linear: LION-S; none: LION-LIT), the natural order
from `a2_i`, the position embedding and so the image size from `pos_embed`. Heads come from the decay's shape,
else from the public size presets by width; pooling is not in the tensors, so it comes from the training args when
the file has them, else the public default (mean). Whatever cannot be read is an error naming the option that
decides it; every given option overrides what was inferred, and the strict load then catches a contradiction.
Nothing here unpickles code: files are read with weights_only=True (argparse.Namespace allowed) unless the
caller allows pickles.
"""
from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lion_export.checkpoints.files import (SAFETENSORS_SUFFIX, CheckpointError, build_model, existing_file,
                                           is_state_dict, load_tensors, one_line, read_safetensors, torch_load)
from lion_export.checkpoints.lion_format import (is_lion_export_checkpoint, load_checkpoint, model_from_loaded,
                                                 read_config_json)
from lion_export.models import PRESETS, TextConfig, VisionConfig, create_model
from lion_export.models.config import ModelConfig
from lion_export.models.public_mlm import is_public_mlm, public_mlm_to_ours, strip_wrapper_prefix
from lion_export.variants import get_variant

WEIGHTS = ("model", "model_ema")
_BLOCK = re.compile(r"^blocks\.(\d+)\.")


@dataclass(frozen=True)
class ReadOptions:
    """How to read a checkpoint; the architecture fields only apply to public files (None = infer)."""

    allow_pickle: bool = False
    config_path: Path | None = None
    weights: str | None = None
    preset: str | None = None
    mask: str | None = None
    heads: int | None = None
    natural: bool | None = None
    cls_pooling: bool | None = None

    def architecture_options(self) -> list[str]:
        """The architecture options that were given, as their CLI names."""
        given = {"--preset": self.preset, "--mask": self.mask, "--heads": self.heads, "--natural": self.natural,
                 "--cls-pooling": self.cls_pooling, "--weights": self.weights}
        return [name for name, value in given.items() if value is not None]


@dataclass(frozen=True)
class PublicFile:
    """The tensors of a public file and what its training script stored next to them."""

    tensors: dict[str, torch.Tensor]
    args: dict[str, Any]
    source: str                    # "state_dict", or "model" / "model_ema" of a training checkpoint


def read_model(path: str | os.PathLike, options: ReadOptions = ReadOptions(),
               report: Callable[[str], None] | None = None) -> nn.Module:
    """The model in `path` (eval mode), whichever of the accepted formats it is; `report` gets the one line that
    says how a public file was read. Every failure is a CheckpointError with a one-line message."""
    path = existing_file(Path(path))
    if path.suffix == SAFETENSORS_SUFFIX:
        own_json = options.config_path is None and path.with_suffix(".json").is_file()
        if own_json:
            _refuse_options(path, options)
            return load_checkpoint(path)
        public = PublicFile(read_safetensors(path), {}, "state_dict")
    else:
        obj = torch_load(path, options.allow_pickle)
        if is_lion_export_checkpoint(obj) or isinstance(obj, nn.Module):
            if options.config_path is not None:
                raise CheckpointError(f"{path}: is a lion-export checkpoint with its own config; --config is for "
                                      ".safetensors files and public state_dicts (drop it)")
            _refuse_options(path, options)
            return model_from_loaded(path, obj)
        public = _public_file(path, obj, options.weights)
    if options.config_path is not None:
        return _build_from_json(path, public, options)
    config, line = infer_config(path, public, options)
    model = build_model(path, config, _our_names(path, public.tensors))
    if report is not None:
        report(f"{path.name}: read as {line}")
    return model


def infer_config(path: Path, public: PublicFile, options: ReadOptions) -> tuple[ModelConfig, str]:
    """The config of a public file's model and the line describing it ("vit-tiny, LION-S natural, 10 classes,
    ...")."""
    tensors = strip_wrapper_prefix(public.tensors)
    if is_public_mlm(tensors):
        config, line = _text_config(path, tensors, options)
    elif "patch_embed.proj.weight" in tensors and "cls_token" in tensors:
        config, line = _vision_config(path, tensors, public.args, options)
    else:
        raise CheckpointError(f"{path}: neither a public LION vision model (patch_embed.proj.weight, cls_token) nor "
                              f"a public MLM (bert.embeddings...): pass --config with its model config JSON if it "
                              f"is one of lion-export's (names: {one_line(sorted(tensors)[:3], 90)})")
    if public.source != "state_dict":
        line += f" (weights: {public.source})"
    return config, line


def _refuse_options(path: Path, options: ReadOptions) -> None:
    given = options.architecture_options()
    if given:
        raise CheckpointError(f"{path}: is a lion-export checkpoint with its own config; drop {', '.join(given)} "
                              "(for public state_dicts only)")


def _public_file(path: Path, obj: object, weights: str | None) -> PublicFile:
    """The state_dict in a loaded public file: the file itself, or one entry of a training checkpoint."""
    if weights is not None and weights not in WEIGHTS:
        raise CheckpointError(f"--weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
    if is_state_dict(obj):
        if weights is not None:
            raise CheckpointError(f"{path}: is a plain state_dict; --weights picks from a training checkpoint "
                                  "(drop it)")
        return PublicFile(dict(obj), {}, "state_dict")
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a checkpoint dict or state_dict")
    if isinstance(obj.get("state"), Mapping) and "model" in obj["state"]:      # Composer (the public MLM code)
        obj = obj["state"]
    key = weights or "model"
    if not is_state_dict(obj.get(key)):
        found = [k for k in WEIGHTS if is_state_dict(obj.get(k))]
        if weights is None and not found:
            raise CheckpointError(f"{path}: neither a lion-export checkpoint nor a state_dict, and no 'model' "
                                  f"state_dict in it (top-level keys: {one_line(sorted(map(str, obj))[:6], 80)})")
        raise CheckpointError(f"{path}: has no '{key}' state_dict; it has: {', '.join(found) or 'none'} "
                              "(choose with --weights)")
    args = obj.get("args")
    args = vars(args) if hasattr(args, "__dict__") else dict(args) if isinstance(args, Mapping) else {}
    return PublicFile(dict(obj[key]), args, key if "optimizer" in obj or "model_ema" in obj else "state_dict")


def _our_names(path: Path, tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    tensors = strip_wrapper_prefix(tensors)
    if not is_public_mlm(tensors):
        return tensors
    try:
        return public_mlm_to_ours(tensors)
    except ValueError as error:
        raise CheckpointError(f"{path}: {one_line(error)}") from None


def _build_from_json(path: Path, public: PublicFile, options: ReadOptions) -> nn.Module:
    """--config with a public file: the JSON is the architecture (no inference, so no other option with it)."""
    given = [name for name in options.architecture_options() if name != "--weights"]
    if given:
        raise CheckpointError(f"--config gives the whole architecture; {', '.join(given)} cannot be combined "
                              "with it")
    header = read_config_json(existing_file(options.config_path))
    if not isinstance(header, Mapping):
        raise CheckpointError(f"{options.config_path}: the config must be a JSON object")
    return build_model(path, header, _our_names(path, public.tensors))


def _depth(path: Path, tensors: Mapping[str, torch.Tensor]) -> int:
    indices = {int(m.group(1)) for m in map(_BLOCK.match, tensors) if m}
    if not indices:
        raise CheckpointError(f"{path}: no blocks.N tensors: a model without layers is not a LION model")
    return max(indices) + 1


def _decay(tensors: Mapping[str, torch.Tensor], per_head: str, per_token: str) -> tuple[str, int | None]:
    """("decay" | "selective" | "lit", heads or None) from block 0's decay parameter."""
    if per_head in tensors:
        return "decay", tensors[per_head].shape[0]
    if f"{per_token}.weight" in tensors:
        return "selective", tensors[f"{per_token}.weight"].shape[0]
    return "lit", None


def _mask_option(path: Path, options: ReadOptions) -> str | None:
    """--mask as a variant key, or None when not given."""
    if options.mask is None:
        return None
    try:
        return get_variant(options.mask).key
    except ValueError as error:
        raise CheckpointError(f"{path}: --mask: {one_line(error)}") from None


def _preset_heads(path: Path, kind: str, dim: int, depth: int, mask: str, options: ReadOptions,
                  file_heads: int | None) -> tuple[int, str]:
    """(heads, the preset's name or "custom (sizes)"): --heads, else the decay's shape, else the preset (--preset,
    or the public preset of this width)."""
    sizes = {name: fields for name, (cls, fields) in PRESETS.items() if cls.kind == kind}
    if options.preset is not None:
        if options.preset not in sizes:
            raise CheckpointError(f"{path}: --preset {options.preset!r} is not a {kind} preset; valid: "
                                  f"{', '.join(sizes)}")
        fields = sizes[options.preset]
        if (fields["dim"], fields["depth"]) != (dim, depth):
            raise CheckpointError(f"{path}: has width {dim} and depth {depth}; preset {options.preset} is "
                                  f"{fields['dim']} x {fields['depth']}")
        name = options.preset
    else:
        name = next((n for n, f in sizes.items() if (f["dim"], f["depth"]) == (dim, depth)), None)
        name = name or next((n for n, f in sizes.items() if f["dim"] == dim), None)
    heads = options.heads or file_heads or (sizes[name]["num_heads"] if name else None)
    if heads is None:
        raise CheckpointError(f"{path}: the number of heads cannot be read from a {get_variant(mask).display_name} "
                              f"file of width {dim} (no decay tensor, no preset of that width): pass --heads")
    if name is not None and sizes[name] == {"dim": dim, "depth": depth, "num_heads": heads}:
        return heads, name
    from_preset = name is not None and not options.heads and not file_heads
    return heads, f"custom ({dim} wide, {depth} deep, {heads} heads{f' as {name}' if from_preset else ''})"


def _vision_config(path: Path, tensors: Mapping[str, torch.Tensor], args: Mapping[str, Any],
                   options: ReadOptions) -> tuple[VisionConfig, str]:
    dim = tensors["cls_token"].shape[-1]
    depth = _depth(path, tensors)
    proj = tensors["patch_embed.proj.weight"]
    patch, in_chans = proj.shape[-1], proj.shape[1]
    classes = tensors["head.weight"].shape[0] if "head.weight" in tensors else 0
    if classes == 0:
        raise CheckpointError(f"{path}: has no classification head (head.weight); only classifiers are supported")
    mask, file_heads = _decay(tensors, "blocks.0.attn.a_i", "blocks.0.attn.a_i")
    mask = _mask_option(path, options) or mask
    natural = options.natural if options.natural is not None else any(k.startswith("blocks.0.attn.a2_i")
                                                                       for k in tensors)
    heads, preset = _preset_heads(path, "vision", dim, depth, mask, options, file_heads)
    if "pos_embed" in tensors:
        patches = tensors["pos_embed"].shape[1] - 1
        side = math.isqrt(max(patches, 0))
        if side * side != patches:
            raise CheckpointError(f"{path}: pos_embed has {patches + 1} rows, not a square patch grid plus the "
                                  "class token")
        img_size, position = side * patch, f"pos-embed {side}x{side}"
    else:
        trained = args.get("input_size")
        img_size = trained if isinstance(trained, int) and trained % patch == 0 else patch * 14
        position = "no pos-embed (any image size)"
    cls_pooling = options.cls_pooling if options.cls_pooling is not None else bool(args.get("cls_tok", False))
    hidden = tensors["blocks.0.mlp.fc1.weight"].shape[0] if "blocks.0.mlp.fc1.weight" in tensors else 4 * dim
    fields = {"mask": mask, "dim": dim, "depth": depth, "num_heads": heads, "mlp_ratio": hidden / dim,
              "img_size": img_size, "patch_size": patch, "in_chans": in_chans, "num_classes": classes,
              "pos_embed": "pos_embed" in tensors, "cls_pooling": cls_pooling, "natural": natural}
    try:
        config = VisionConfig(**fields)
    except ValueError as error:
        raise CheckpointError(f"{path}: {one_line(error)}") from None
    name = get_variant(mask).display_name + (" natural" if natural else "")
    pooling = "class-token pooling" if cls_pooling else "mean pooling"
    if options.cls_pooling is None and "cls_tok" not in args:
        pooling += " (the public default; --cls-pooling if trained with --cls_tok)"
    return config, f"{preset}, {name}, {classes} classes, {position}, {pooling}"


def _text_config(path: Path, tensors: Mapping[str, torch.Tensor], options: ReadOptions) -> tuple[TextConfig, str]:
    if options.natural or options.cls_pooling is not None:
        raise CheckpointError(f"{path}: is a text model; --natural and --cls-pooling are for vision models")
    ours = _our_names(path, tensors)
    vocab, dim = ours["token_embed.weight"].shape
    depth = _depth(path, ours)
    mask, file_heads = _decay(ours, "blocks.0.attn.ai", "blocks.0.attn.Wa_i")
    mask = _mask_option(path, options) or mask
    heads, preset = _preset_heads(path, "text", dim, depth, mask, options, file_heads)
    pos_embed = "pos_embed.weight" in ours
    positions = tensors.get("bert.embeddings.position_ids")
    max_len = (ours["pos_embed.weight"].shape[0] if pos_embed
               else positions.numel() if positions is not None else TextConfig.max_len)
    hidden = ours["blocks.0.mlp.fc1.weight"].shape[0] if "blocks.0.mlp.fc1.weight" in ours else 4 * dim
    fields = {"mask": mask, "dim": dim, "depth": depth, "num_heads": heads, "mlp_ratio": hidden / dim,
              "vocab_size": vocab, "max_len": max_len, "mlm_head": "head.decoder.weight" in ours,
              "layer_norm_after": "blocks.0.attn.layer_norm.weight" in ours, "pos_embed": pos_embed,
              "type_vocab_size": ours["type_embed.weight"].shape[0] if "type_embed.weight" in ours else 0}
    try:
        config = TextConfig(**fields)
    except ValueError as error:
        raise CheckpointError(f"{path}: {one_line(error)}") from None
    parts = [preset, f"{get_variant(mask).display_name} MLM", f"vocabulary {vocab}",
             f"pos-embed {max_len}" if pos_embed else f"no pos-embed (max_len {max_len})"]
    if config.layer_norm_after:
        parts.append("layer norm after the mixer")
    if not config.mlm_head:
        parts.append("no MLM head")
    return config, ", ".join(parts)



def _unwrap_state_dict(path: Path, obj: object, weights: str = "model") -> dict[str, torch.Tensor]:
    """The tensors of a training script's file: the dict itself, or under `weights` ('model' or 'model_ema') /
    'state_dict' (DeiT and Lightning save {"model": ..., "optimizer": ..., "args": ...}); a DataParallel 'module.'
    prefix is dropped."""
    if isinstance(obj, Mapping) and not is_state_dict(obj):
        if weights != "model" and not is_state_dict(obj.get(weights)):
            raise CheckpointError(f"{path}: has no {weights!r} state_dict")
        for key in (weights, "state_dict", "model_state_dict"):
            if is_state_dict(obj.get(key)):
                obj = obj[key]
                break
    if not is_state_dict(obj):
        raise CheckpointError(f"{path}: no state_dict of tensors found (looked at the top level and under "
                              "'model', 'state_dict', 'model_state_dict')")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


def load_state_dict_file(path: str | os.PathLike, preset: str, *, allow_pickle: bool = False,
                         weights: str = "model", **overrides: Any) -> nn.Module:
    """Load a bare state_dict (e.g. trained with the public LION code) into create_model(preset, **overrides).

    The file holds only weights, so the architecture comes from the preset and overrides, which must match the
    training run (e.g. load_state_dict_file("lion_s_tiny.pth", "vit-tiny", mask="selective", pos_embed=False)).
    weights: which entry of a training checkpoint to take, "model" or "model_ema".
    Names and shapes must match exactly (strict=True); a mismatch is a CheckpointError listing examples.
    lion_export.read_model(path) infers the architecture instead.
    Equivalent by hand: `model = create_model(...); model.load_state_dict(sd, strict=True)`.
    """
    path = existing_file(Path(path))
    try:
        model = create_model(preset, **overrides)
    except ValueError as error:
        raise CheckpointError(f"{path}: {one_line(error)}") from None
    if path.suffix == SAFETENSORS_SUFFIX:
        tensors = read_safetensors(path)
    else:
        obj = torch_load(path, allow_pickle)
        tensors = _unwrap_state_dict(path, obj.state_dict() if isinstance(obj, nn.Module) else obj, weights)
    return load_tensors(path, model, tensors)


__all__ = ["WEIGHTS", "ReadOptions", "PublicFile", "read_model", "infer_config", "load_state_dict_file"]
