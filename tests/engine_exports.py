"""Tiny lion-export ONNX files for the engine tests, exported once per test session and shared by every
tests/test_engine*.py module (an export costs seconds; a TensorRT-RTX build of it a few more).

The files go to FOLDER, a folder of pytest's temporary tree that tests/conftest.py sets once per session, so
they go when pytest removes its tree (a folder made here at import time stayed in /tmp after every run)."""
from __future__ import annotations

import functools
from pathlib import Path

import torch

from lion_export import create_model
from lion_export.export import export_onnx

CHUNK, TRACE_LEN, MAX_LEN = 16, 24, 64
TEXT = {"depth": 1, "dim": 16, "num_heads": 2, "vocab_size": 50, "max_len": MAX_LEN}
VISION = {"depth": 1, "dim": 16, "num_heads": 2, "img_size": 32, "patch_size": 8, "num_classes": 5}
FOLDER: Path | None = None


def model(kind: str, mask: str, **overrides):
    torch.manual_seed(0)
    if kind == "text":
        return create_model("encoder-tiny", mask=mask, **{**TEXT, **overrides})
    return create_model("vit-tiny", mask=mask, **{**VISION, **overrides})


def exported(kind: str, mask: str, mode: str, dtype: str = "fp32", pos_embed: bool = True,
             static: bool = False) -> Path:
    """The .onnx of a depth-1, dim-16 model (text: trace length 24 of max 64; vision: 32 px, patch 8), exported
    once per session whichever way the arguments are spelled."""
    return _exported(kind, mask, mode, dtype, pos_embed or kind == "text", static)   # text models have none


@functools.cache
def _exported(kind: str, mask: str, mode: str, dtype: str, pos_embed: bool, static: bool) -> Path:
    if FOLDER is None:
        raise RuntimeError("engine_exports.FOLDER is not set: tests/conftest.py sets it for every session")
    extra = {} if kind == "text" else {"pos_embed": pos_embed}
    path = FOLDER / f"{kind}-{mask}-{mode}-{dtype}-{'pos' if pos_embed else 'nopos'}{'-static' if static else ''}.onnx"
    seq_len = TRACE_LEN if kind == "text" else None
    return export_onnx(model(kind, mask, **extra), path, form=mode, chunk_size=CHUNK, dtype=dtype, seq_len=seq_len,
                       static=static)
