"""The public LION masked-language model's tensor names (a BERT `BertForMaskedLM` layout) -> `LionTextEncoder`'s.

The public MLM code (LIONS-EPFL/LION, Masked_Language_Modeling) trains a Hugging Face style BERT whose self-attention
is the LION mixer. Its state_dict, with the mixer's names kept (they are already ours):

    bert.embeddings.{word_embeddings, position_embeddings (LIT only), token_type_embeddings}.weight,
    bert.embeddings.LayerNorm.{weight, bias}, bert.embeddings.position_ids (a buffer: 0, 1, 2, ...)
    bert.encoder.layer.N.attention.self.{query, key, value, layer_norm (optional), ai (LION-D), Wa_i (LION-S)}
    bert.encoder.layer.N.attention.output.{dense, LayerNorm}      -> blocks.N.{attn_proj, norm1}
    bert.encoder.layer.N.intermediate.dense, .output.dense         -> blocks.N.mlp.{fc1, fc2}
    bert.encoder.layer.N.output.LayerNorm                          -> blocks.N.norm2
    cls.predictions.transform.{dense, LayerNorm}, .decoder.weight, .bias (= .decoder.bias, tied)  -> head.*

Training wrappers add a prefix ("model." from Composer, "module." from DataParallel), dropped here. Only exact,
lossless renames happen: the two copies of the tied decoder bias must agree, and position_ids must be the
positions it always is; anything else unknown is left in place so the strict load names it.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

import torch

_PREFIXES = ("model.", "module.")
_LAYER = re.compile(r"^bert\.encoder\.layer\.(\d+)\.(.+)$")
_LAYER_PARTS = {
    "attention.self.": "attn.",
    "attention.output.dense.": "attn_proj.",
    "attention.output.LayerNorm.": "norm1.",
    "intermediate.dense.": "mlp.fc1.",
    "output.dense.": "mlp.fc2.",
    "output.LayerNorm.": "norm2.",
}
_FIXED = {
    "bert.embeddings.word_embeddings.weight": "token_embed.weight",
    "bert.embeddings.position_embeddings.weight": "pos_embed.weight",
    "bert.embeddings.token_type_embeddings.weight": "type_embed.weight",
    "bert.embeddings.LayerNorm.weight": "embed_norm.weight",
    "bert.embeddings.LayerNorm.bias": "embed_norm.bias",
    "cls.predictions.transform.dense.weight": "head.dense.weight",
    "cls.predictions.transform.dense.bias": "head.dense.bias",
    "cls.predictions.transform.LayerNorm.weight": "head.norm.weight",
    "cls.predictions.transform.LayerNorm.bias": "head.norm.bias",
    "cls.predictions.decoder.weight": "head.decoder.weight",
    "cls.predictions.bias": "head.decoder.bias",
}
_POSITION_IDS = "bert.embeddings.position_ids"
_TIED_BIAS = "cls.predictions.decoder.bias"


def strip_wrapper_prefix(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop a prefix every name shares ("model." from Composer, "module." from DataParallel), repeatedly."""
    tensors = dict(tensors)
    while tensors:
        prefix = next((p for p in _PREFIXES if all(k.startswith(p) for k in tensors)), None)
        if prefix is None:
            break
        tensors = {k[len(prefix):]: v for k, v in tensors.items()}
    return tensors


def is_public_mlm(tensors: Mapping[str, torch.Tensor]) -> bool:
    """True for the public BERT layout (after strip_wrapper_prefix)."""
    return "bert.embeddings.word_embeddings.weight" in tensors


def public_mlm_to_ours(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a public MLM state_dict to LionTextEncoder's names; ValueError if a tied or derived copy disagrees."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        if name == _POSITION_IDS:
            if not torch.equal(tensor.reshape(-1).long(), torch.arange(tensor.numel())):
                raise ValueError(f"{name} is not 0, 1, 2, ...: custom position ids are not supported")
            continue
        if name == _TIED_BIAS:
            bias = tensors.get("cls.predictions.bias")
            if bias is not None and not torch.equal(bias, tensor):
                raise ValueError(f"{name} and cls.predictions.bias differ; they are one tied parameter in BERT")
            if bias is None:
                out["head.decoder.bias"] = tensor
            continue
        layer = _LAYER.match(name)
        if layer is not None:
            index, rest = layer.groups()
            part = next((p for p in _LAYER_PARTS if rest.startswith(p)), None)
            out[f"blocks.{index}.{_LAYER_PARTS[part]}{rest[len(part):]}" if part else name] = tensor
        else:
            out[_FIXED.get(name, name)] = tensor
    return out


__all__ = ["strip_wrapper_prefix", "is_public_mlm", "public_mlm_to_ours"]
