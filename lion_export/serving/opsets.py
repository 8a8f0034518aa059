"""Which onnxruntime a file's opset needs: the note `triton-repo` prints for every .onnx it writes.

The onnxruntime inside a Triton container lags the one on pip, and onnxruntime refuses a file stamped with a newer
standard opset than it implements. The table maps each opset an export can target (18 and up) to the oldest
onnxruntime release that implements it, from onnxruntime's published compatibility matrix (opsets 18 to 22); for
opset 28 the release is the one installed here, which runs it (the export's default, checked by the suite). Opsets
23 to 27 are newer than any release that matrix listed when this table was written: None, and the note says so.
"""
from __future__ import annotations

#: standard opset -> the oldest onnxruntime release that implements it (None: not known here)
OLDEST_ONNXRUNTIME: dict[int, str | None] = {
    18: "1.14", 19: "1.15", 20: "1.17", 21: "1.18", 22: "1.21",
    23: None, 24: None, 25: None, 26: None, 27: None, 28: "1.32",
}


def file_opset(model) -> int:
    """The standard-domain opset an onnx.ModelProto is stamped with."""
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def opset_note(opset: int) -> str:
    """One sentence: the opset and the oldest onnxruntime that runs it, and how to target an older container."""
    oldest = OLDEST_ONNXRUNTIME.get(opset)
    needs = (f"onnxruntime >= {oldest}" if oldest else
             "an onnxruntime newer than 1.22 (the newest release this table knows to run it is 1.32)")
    return (f"opset {opset}: needs {needs}; for an older Triton container re-export with `--opset N` "
            f"(opset 19 runs on onnxruntime >= 1.15)")


__all__ = ["OLDEST_ONNXRUNTIME", "file_opset", "opset_note"]
