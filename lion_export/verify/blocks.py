"""Localisation: where inside the model an export's error appears, block by block, mixer or MLP.

Every LION model here puts a LayerNorm before (vision, pre-norm) or after (text, post-norm) each block's mixer
and MLP, and the exporter turns each nn.LayerNorm into one LayerNormalization node, in the model's order. The
input of each of those norms is the residual stream at a stage boundary, so comparing those inputs locates the
error: the ONNX graph's are marked as extra outputs in a temporary copy of the file, eager PyTorch's are read by
forward pre-hooks on the same modules (float64, and the graph's dtype for the calibrated bound, as for the
outputs). The dynamo exporter's node names (layer_norm_3, ...) carry no module path in a saved file, hence the
match by order, which is checked: counts that differ mean the file is not a plain export of this model and no
per-block table is made.
"""
from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..dtypes import torch_dtype
from .calibration import calibrated_tolerance
from .compare import OutputComparison, compare_output
from .tolerances import ToleranceRequest, tolerance_for


@dataclass
class StageResult:
    """The residual stream after one stage (embeddings, blocks.i mixer, blocks.i MLP, head) compared."""

    stage: str
    op_class: str            # "embeddings", "mixer", "MLP" or "head"
    comparison: OutputComparison

    def to_dict(self) -> dict:
        return {"stage": self.stage, "op_class": self.op_class, **self.comparison.to_dict()}


def _norms(model: nn.Module) -> list[tuple[str, nn.LayerNorm]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.LayerNorm)]


def stage_of(kind: str, norm_name: str, depth: int) -> tuple[str, str]:
    """(stage, op class) whose result is the input of LayerNorm `norm_name`."""
    block = re.match(r"blocks\.(\d+)\.(norm1|norm2|attn\.layer_norm)$", norm_name)
    if kind == "text":            # post-norm: norm1 follows the mixer, norm2 the MLP
        if norm_name == "embed_norm":
            return "embeddings", "embeddings"
        if block:
            index, which = block.groups()
            return (f"blocks.{index} MLP", "MLP") if which == "norm2" else (f"blocks.{index} mixer", "mixer")
        return "head", "head"
    if block:                     # pre-norm: norm1 reads the block's input, norm2 the mixer's residual
        index, which = int(block.group(1)), block.group(2)
        if which == "norm2":
            return f"blocks.{index} mixer", "mixer"
        return ("embeddings", "embeddings") if index == 0 else (f"blocks.{index - 1} MLP", "MLP")
    return f"blocks.{depth - 1} MLP", "MLP"


def _eager_stages(model: nn.Module, feed_tensors: list[torch.Tensor], dtype: torch.dtype, prepare) -> list[np.ndarray]:
    """The input of every LayerNorm, in module order, from eager `model` in `dtype`."""
    import copy

    work = copy.deepcopy(model).to(dtype).eval()
    prepare(work)
    captured: dict[str, np.ndarray] = {}
    hooks = [m.register_forward_pre_hook(lambda _m, args, name=name: captured.__setitem__(
        name, args[0].detach().to(torch.float64).cpu().numpy())) for name, m in _norms(work)]
    try:
        with torch.inference_mode():
            work(*[t.to(dtype) if t.is_floating_point() else t for t in feed_tensors])
    finally:
        for hook in hooks:
            hook.remove()
    return [captured[name] for name, _ in _norms(work) if name in captured]


def _graph_stages(onnx_path: Path, feed: dict[str, np.ndarray], providers: tuple[str, ...]) -> list[np.ndarray]:
    """The input of every LayerNormalization node of the graph, in graph order, from onnxruntime."""
    import onnx

    from ..runners.onnx_runtime import OnnxRuntimeRunner

    proto = onnx.load(str(onnx_path))
    names = [n.input[0] for n in proto.graph.node if n.op_type == "LayerNormalization"]
    existing = {o.name for o in proto.graph.output}
    for name in names:
        if name not in existing:
            proto.graph.output.append(onnx.ValueInfoProto(name=name))
            existing.add(name)
    with tempfile.TemporaryDirectory() as folder:
        copy_path = Path(folder) / "stages.onnx"
        onnx.save_model(proto, str(copy_path), save_as_external_data=True, location="stages.onnx.data")
        with OnnxRuntimeRunner(copy_path, providers=providers) as runner:
            outputs = runner.infer(feed)
    return [np.asarray(outputs[name], dtype=np.float64) for name in names]


def per_block(model: nn.Module, onnx_path: str | Path, feed: dict[str, np.ndarray], input_names: list[str], *,
              dtype: str, form: str, chunk_size: int, method: str, request: ToleranceRequest,
              providers: tuple[str, ...] = ("CPUExecutionProvider",)) -> tuple[list[StageResult], str]:
    """Compare every stage of the graph with eager PyTorch on one feed; returns the rows and a one-line finding
    (the first stage beyond its bound, or where the headroom grows most), or ([], why not) when no match."""
    from ..models import set_form
    from ..models.presets import config_of

    config = config_of(model)
    norms = _norms(model)
    tensors = [torch.from_numpy(np.ascontiguousarray(feed[n])) for n in input_names]
    graph = _graph_stages(Path(onnx_path), feed, providers)
    if len(graph) != len(norms):
        return [], (f"no per-block table: the graph has {len(graph)} LayerNormalization nodes, the model "
                    f"{len(norms)} LayerNorms")
    expected = _eager_stages(model, tensors, torch.float64, lambda m: set_form(m, "parallel"))
    eager = None
    if method == "calibrated":
        eager = _eager_stages(model, tensors, torch_dtype(dtype),
                              lambda m: set_form(m, form, chunk_size))
    mask = feed.get("attention_mask")
    rows = []
    for index, (name, _) in enumerate(norms):
        stage, op_class = stage_of(config.kind, name, config.depth)
        exp = expected[index]
        valid = np.asarray(mask).astype(bool) if mask is not None and exp.shape[:2] == mask.shape else None
        base = calibrated_tolerance(exp, eager[index], dtype, valid) if eager is not None else tolerance_for(dtype)
        rows.append(StageResult(stage, op_class, compare_output(stage, exp, graph[index], request.apply(base, ""),
                                                                valid)))
    return rows, finding(rows)


def finding(rows: list[StageResult]) -> str:
    """The first stage whose error exceeds its bound; else the one where the headroom jumps most."""
    for row in rows:
        if not row.comparison.passed:
            return (f"error first exceeds its bound at {row.stage} ({row.op_class}): headroom "
                    f"{row.comparison.headroom:.3g}")
    if len(rows) < 2:
        return "every stage is within its bound"
    jumps = [(b.comparison.headroom / max(a.comparison.headroom, 1e-12), b) for a, b in zip(rows, rows[1:])]
    factor, row = max(jumps, key=lambda j: j[0])
    return (f"every stage is within its bound; the headroom grows most ({factor:.3g}x) at {row.stage} "
            f"({row.op_class}): {row.comparison.headroom:.3g}")


__all__ = ["StageResult", "per_block", "stage_of", "finding"]
