"""The graph interface of an exported LION model: input / output names, example inputs and dynamic axes.

Graph inputs follow the model (issue 3): `images` (B, C, H, W) for vision models, `input_ids` and
`attention_mask` (B, L) int64 for text encoders. A vision model with a learnt position embedding takes H = W =
img_size only (the embedding fixes the token count), so its one dynamic axis is the batch; without one, H and W are
dynamic too, as multiples of the patch size (L = (H/p)(W/p) + 1 varies with them). Text encoders get dynamic batch
and sequence axes, the sequence bounded by max_len. Output axes get the same names as the input axes they follow,
because the exporter's own symbols for them are expressions (e.g. Min(seq, 64*ceil(seq/64)) after the chunked
form's padding) that mean nothing to a user of the file.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..models.presets import config_of
from ..models.vision import patch_grid_for_tokens

BATCH_AXIS = "batch"
SEQ_AXIS = "seq_len"
HEIGHT_PATCHES_AXIS = "height_patches"
WIDTH_PATCHES_AXIS = "width_patches"


@dataclass(frozen=True)
class GraphSignature:
    """What torch.onnx.export needs to trace a model, and the axis names its graph should carry."""

    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    example_inputs: tuple[torch.Tensor, ...]
    dynamic_shapes: tuple[dict[int, torch.export.Dim], ...] | None
    output_dims: tuple[tuple[str | int, ...], ...]   # per output: an axis name or a static size per axis
    seq_len: int


def _vision_signature(config, batch: int, seq_len: int | None, dtype: torch.dtype, static: bool,
                      batch_dim: torch.export.Dim) -> GraphSignature:
    """Images (B, C, H, W) -> logits. With a learnt position embedding H = W = img_size, so the batch is the only
    dynamic axis; without one H and W are dynamic multiples of the patch size (the model takes any such image),
    traced at img_size x img_size or at the near-square image of `seq_len` tokens."""
    patch = config.patch_size
    tokens = config.num_patches + 1
    if config.pos_embed or seq_len is None:
        if seq_len is not None and seq_len != tokens:
            raise ValueError(f"this vision model's sequence length is fixed at {tokens} tokens by its learnt "
                             f"position embedding ({config.img_size}x{config.img_size}, patch {patch}); "
                             f"got seq_len={seq_len}")
        rows = cols = config.img_size // patch
    else:
        rows, cols = patch_grid_for_tokens(seq_len)
    if not (static or config.pos_embed) and min(rows, cols) < 2:
        # torch.export treats a size-1 example axis as the constant 1: each side needs >= 2 patches to stay dynamic
        raise ValueError(f"dynamic image sizes are traced from an image of at least 2x2 patches; the example has "
                         f"{rows}x{cols} (seq_len {rows * cols + 1}): use --seq-len with a count whose near-square "
                         "grid is at least 2x2 (e.g. 5), or --static")
    images = torch.randn(batch, config.in_chans, rows * patch, cols * patch, dtype=dtype)
    dims: tuple[str | int, ...] = (batch if static else BATCH_AXIS, config.num_classes)
    if static:
        dynamic = None
    elif config.pos_embed:
        dynamic = ({0: batch_dim},)
    else:
        dynamic = ({0: batch_dim, 2: patch * torch.export.Dim(HEIGHT_PATCHES_AXIS, min=1),
                    3: patch * torch.export.Dim(WIDTH_PATCHES_AXIS, min=1)},)
    return GraphSignature(("images",), ("logits",), (images,), dynamic, (dims,), rows * cols + 1)


def graph_signature(model: nn.Module, *, batch: int, seq_len: int | None, dtype: torch.dtype,
                    static: bool) -> GraphSignature:
    """The signature for tracing `model` on a (batch, seq_len) example; seq_len None = the model's default."""
    config = config_of(model)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    if not static and batch < 2:
        # torch.export treats a size-1 example axis as the constant 1, so a dynamic batch needs an example >= 2
        raise ValueError(f"a dynamic batch axis is traced from a batch of at least 2 (got {batch}); "
                         "use --batch 2 or more, or --static for a graph fixed to batch 1")
    batch_dim = torch.export.Dim(BATCH_AXIS, min=1)
    if config.kind == "vision":
        return _vision_signature(config, batch, seq_len, dtype, static, batch_dim)

    seq_len = min(128, config.max_len) if seq_len is None else seq_len
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or not 1 <= seq_len <= config.max_len:
        raise ValueError(f"seq_len must be an integer in [1, max_len={config.max_len}], got {seq_len!r}")
    if not static and seq_len < 2:
        raise ValueError(f"a dynamic sequence axis is traced from at least 2 tokens (got {seq_len}); "
                         "use --seq-len 2 or more, or --static")
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, config.vocab_size, (batch, seq_len), generator=generator)
    attention_mask = torch.ones(batch, seq_len, dtype=torch.int64)
    width = config.vocab_size if config.mlm_head else config.dim
    dims = (batch, seq_len, width) if static else (BATCH_AXIS, SEQ_AXIS, width)
    seq_dim = torch.export.Dim(SEQ_AXIS, min=1, max=config.max_len)
    dynamic = None if static else ({0: batch_dim, 1: seq_dim}, {0: batch_dim, 1: seq_dim})
    output = "logits" if config.mlm_head else "hidden_states"
    return GraphSignature(("input_ids", "attention_mask"), (output,), (input_ids, attention_mask), dynamic,
                          (dims,), seq_len)


__all__ = ["BATCH_AXIS", "SEQ_AXIS", "HEIGHT_PATCHES_AXIS", "WIDTH_PATCHES_AXIS", "GraphSignature",
           "graph_signature"]
