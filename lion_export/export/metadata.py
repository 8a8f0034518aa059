"""metadata_props of an exported file: enough to tell, from the .onnx alone, what it is and where it came from.

Keys (values are strings; JSON for the config): lion_export_version, mode (the form), chunk_size, dtype, opset, variants
(display names, comma separated), model_config (the model's config JSON, form included), trace_batch,
trace_seq_len, scan_op (recurrent exports only: "lion" or "onnx", how each LION pass is written), checkpoint_sha256
(only when exported from a checkpoint file). `lion-export inspect` shows them
and `verify` reads mode / chunk_size / trace_seq_len to choose its test lengths.
"""
from __future__ import annotations

import json

import onnx
from torch import nn

from .. import __version__
from ..models import LionAttention
from ..graph_summary import FORM_KEY
from ..scan_op import DEFAULT_SCAN_OP, SCAN_OP_KEY
from ..variants import get_variant


def model_variants(model: nn.Module) -> list[str]:
    """Display names of the LION variants the model's mixers use, in order of first appearance."""
    names = [m.display_name for m in model.modules() if isinstance(m, LionAttention)]
    if not names and hasattr(getattr(model, "config", None), "mask"):
        names = [get_variant(model.config.mask).display_name]
    return list(dict.fromkeys(names))


def export_metadata(model: nn.Module, *, form: str, chunk_size: int, dtype: str, opset: int, batch: int,
                    seq_len: int, checkpoint_sha256: str | None,
                    scan_op: str = DEFAULT_SCAN_OP) -> dict[str, str]:
    config = getattr(model, "config", None)
    meta = {
        "lion_export_version": __version__,
        FORM_KEY: form,
        "chunk_size": str(chunk_size),
        "dtype": dtype,
        "opset": str(opset),
        "variants": ",".join(model_variants(model)),
        "model_config": json.dumps(config.to_dict(), sort_keys=True) if hasattr(config, "to_dict") else "{}",
        "trace_batch": str(batch),
        "trace_seq_len": str(seq_len),
    }
    if form == "recurrent":
        meta[SCAN_OP_KEY] = scan_op
    if checkpoint_sha256 is not None:
        meta["checkpoint_sha256"] = checkpoint_sha256
    return meta


def set_metadata(model: onnx.ModelProto, values: dict[str, str]) -> None:
    """Replace the model's metadata_props with `values` (the exporter's own entries are dropped)."""
    del model.metadata_props[:]
    for key, value in values.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


__all__ = ["model_variants", "export_metadata", "set_metadata"]
