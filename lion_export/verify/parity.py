"""verify_onnx: prove an .onnx export computes what the eager model computes.

Eager PyTorch runs in the parallel form (the direct definition of LION attention, LION-REFERENCE.md "Full form")
on a float64 copy of the model where that fits in memory, onnxruntime runs the file, on the same inputs, at several
sizes: by default the trace length, one other length and one that is not a multiple of the chunk size, so a graph
that silently froze a shape or mishandles a partial last chunk fails. When the model's token count cannot vary
(a learnt position embedding, or an export with static image sizes), batch sizes are varied instead and the report
says so. Text models get padded batches (rows of unequal length); padded positions' outputs are not compared,
since no model defines them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..inspect import load_onnx_model, metadata
from ..models.presets import config_of
from ..models.vision import patch_grid_for_tokens
from .compare import compare_outputs, failed_comparison
from .inputs import (InputSpec, InputsError, check_feed, graph_input_specs, image_size_for_tokens, load_inputs,
                     make_image_feed, make_text_feed, tokens_for_image)
from .onnxruntime_runner import OnnxRuntimeRunner
from .report import CaseResult, VerificationReport
from .tolerances import TOLERANCES, tolerance_for
from .torch_runner import TorchRunner

# A float64 parallel reference materialises (B, H, L, L) score matrices; beyond this budget it runs in float32.
FLOAT64_BUDGET_BYTES = 2 * 2**30
SEED = 0


@dataclass
class Case:
    """One feed to run: a label for the report and the feed itself."""

    label: str
    seq_len: int | None
    batch: int
    feed: dict[str, np.ndarray]


def _meta_int(meta: dict, key: str) -> int | None:
    """An integer metadata_props entry written by the exporter (lion_export/export/metadata.py), if present."""
    value = meta.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def default_seq_lens(trace_len: int, chunk_size: int, max_len: int | None = None) -> list[int]:
    """Three distinct lengths within max_len: the trace length, another (half of it where possible), and one that
    is not a multiple of c (2c + 1 where possible: it spans a partial third chunk)."""
    cap = max_len if max_len is not None else max(trace_len, 2 * chunk_size + 1) + 3
    trace = min(trace_len, cap)
    fallbacks = [trace + 1, trace - 1, cap, cap - 1, cap - 2, 3, 2]

    def first(candidates: list[int], taken: list[int], uneven: bool = False) -> list[int]:
        for n in candidates:
            if 2 <= n <= cap and n not in taken and not (uneven and chunk_size > 1 and n % chunk_size == 0):
                return [*taken, n]
        return taken

    lengths = first([max(2, trace // 2), *fallbacks], [trace])
    return first([2 * chunk_size + 1, *fallbacks, *range(cap, 1, -1)], lengths, uneven=True)


def default_image_token_counts(trace_len: int, chunk_size: int) -> list[int]:
    """Three different token counts of images for a model whose image size can vary: the trace's, the traced patch
    grid with one row fewer (one more from 2 rows: a non-square image), and the first count from 2c + 1 up that is
    not a multiple of c, differs from both and has a grid of at least 2x2 patches (a partial third chunk).

    Every grid here has two or more patches a side, as torch.export assumes of a dynamic axis it traced from >= 2;
    default_seq_lens would not do: it can repeat a count (17 tokens at c = 8) or pick a 1 x n strip.
    """
    rows, cols = patch_grid_for_tokens(trace_len)
    other = (rows - 1 if rows > 2 else rows + 1) * cols + 1
    uneven = 2 * chunk_size + 1
    while (uneven in (trace_len, other) or (chunk_size > 1 and uneven % chunk_size == 0)
           or min(patch_grid_for_tokens(uneven)) < 2):
        uneven += 1
    return [trace_len, other, uneven]


def _plural(count: int, noun: str) -> str:
    return noun if count == 1 else f"{noun}s"


def _batches(spec: InputSpec, batch: int) -> list[int]:
    if isinstance(spec.shape[0], int):
        return [spec.shape[0]]
    return list(dict.fromkeys([1, batch, batch + 1]))


def _vision_cases(config, specs: list[InputSpec], meta: dict, seq_lens: list[int] | None, batch: int,
                  rng: np.random.Generator, notes: list[str]) -> tuple[str, list[Case]]:
    image = next((s for s in specs if len(s.shape) == 4 and s.dtype.kind == "f"), None)
    if image is None:
        raise ValueError(f"a vision model's graph needs a 4-D float image input; it has "
                         f"{', '.join(s.describe() for s in specs)}")
    patch = config.patch_size
    static_size = isinstance(image.shape[2], int) and isinstance(image.shape[3], int)
    # a static export without a position embedding may have been traced at any image size: the graph's is the one
    height, width = image.shape[2:] if static_size else (config.img_size, config.img_size)
    trace = tokens_for_image(height, width, patch)
    if isinstance(image.shape[0], int):
        batch = image.shape[0]
    if config.pos_embed or static_size:
        reason = "the learnt position embedding" if config.pos_embed else "the export's static image size"
        if seq_lens and set(seq_lens) != {trace}:
            raise ValueError(f"this model's sequence length is fixed at {trace} tokens by {reason}; "
                             f"it cannot be verified at lengths {seq_lens}")
        batches = _batches(image, batch)
        notes.append(f"sequence length fixed at {trace} tokens ({height}x{width} images) by "
                     f"{reason}, so the batch size varies instead ({_plural(len(batches), 'batch size')} "
                     f"{', '.join(map(str, batches))})")
        return "batch", [Case(f"B={b} L={trace}", trace, b, make_image_feed(image, b, height, width, rng))
                         for b in batches]
    lengths = seq_lens or default_image_token_counts(_meta_int(meta, "trace_seq_len") or trace,
                                                     _meta_int(meta, "chunk_size") or config.chunk_size)
    cases = []
    for length in lengths:
        height, width = image_size_for_tokens(length, patch)
        cases.append(Case(f"L={length} ({height}x{width})", length, batch,
                          make_image_feed(image, batch, height, width, rng)))
    return "seq_len", cases


def _text_cases(config, specs: list[InputSpec], meta: dict, seq_lens: list[int] | None, batch: int,
                rng: np.random.Generator, notes: list[str]) -> tuple[str, list[Case]]:
    by_name = {s.name: s for s in specs}
    ids = by_name.get("input_ids") or next((s for s in specs if s.dtype.kind in "iu"), None)
    if ids is None or len(ids.shape) != 2:
        raise ValueError(f"a text model's graph needs a (B, L) input_ids input; it has "
                         f"{', '.join(s.describe() for s in specs)}")
    mask = by_name.get("attention_mask")
    if isinstance(ids.shape[0], int):
        batch = ids.shape[0]
    if isinstance(ids.shape[1], int):
        if seq_lens and set(seq_lens) != {ids.shape[1]}:
            raise ValueError(f"the export's sequence length is static ({ids.shape[1]}); "
                             f"it cannot be verified at lengths {seq_lens}")
        lengths = [ids.shape[1]]
        notes.append(f"the export's sequence length is static: verified at its {ids.shape[1]} tokens only")
    else:
        trace = _meta_int(meta, "trace_seq_len") or min(128, config.max_len)
        lengths = seq_lens or default_seq_lens(trace, _meta_int(meta, "chunk_size") or config.chunk_size,
                                               config.max_len)
    too_long = [n for n in lengths if n > config.max_len]
    if too_long:
        raise ValueError(f"sequence lengths {too_long} exceed the model's max_len ({config.max_len})")
    return "seq_len", [Case(f"L={n}" + (" pad" if mask is not None and batch > 1 else ""), n, batch,
                            make_text_feed(ids, mask, batch, n, config.vocab_size, rng)) for n in lengths]


def _padding_masks(feed: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Outputs laid out (B, L, ...) like attention_mask are compared on real tokens only."""
    mask = feed.get("attention_mask")
    if mask is None:
        return {}
    return {name: mask.astype(bool) for name, out in expected.items() if out.shape[:2] == mask.shape}


def _graph_dtype(model) -> str:
    import onnx

    types = {v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output]}
    return "fp16" if onnx.TensorProto.FLOAT16 in types else "fp32"


def _reference_dtype(config, cases: list[Case]) -> torch.dtype:
    """float64 unless the largest case's (B, H, L, L) float64 score matrices would exceed the budget."""
    worst = max(c.batch * config.num_heads * (c.seq_len or 1) ** 2 * 8 * 3 for c in cases)
    return torch.float64 if worst <= FLOAT64_BUDGET_BYTES else torch.float32


def _to_parallel(model: torch.nn.Module) -> None:
    from ..models import set_form

    set_form(model, "parallel")


def verify_onnx(model: torch.nn.Module, onnx_path: str | Path, *, seq_lens: list[int] | None = None,
                batch: int = 2, dtype: str | None = None, atol: float | None = None, rtol: float | None = None,
                inputs: str | Path | dict[str, np.ndarray] | None = None, optimization: str = "all",
                progress: bool = True,
                on_case: Callable[[CaseResult], None] | None = None) -> VerificationReport:
    """Run eager `model` (parallel form, float64 where it fits) and onnxruntime on `onnx_path`; compare every output.

    seq_lens: token counts to verify at (default: trace length, another, one not a multiple of the chunk size).
    dtype: "fp32" | "fp16" selects the tolerance (default: read off the graph's input/output types).
    inputs: a path to inputs.npz or a dict of arrays, used as the only case instead of generated inputs.
    optimization: onnxruntime graph optimisation level ("all" | "extended" | "basic" | "disable").
    Raises ValueError (InputsError / OnnxFileError for bad files) before anything runs if the request is invalid.
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if seq_lens is not None and (not seq_lens or any(n < 2 for n in seq_lens)):
        raise ValueError(f"sequence lengths must be >= 2, got {seq_lens}")
    proto = load_onnx_model(onnx_path)
    meta = metadata(proto)
    specs = graph_input_specs(proto)
    output_names = [o.name for o in proto.graph.output]
    dtype = dtype or (meta["dtype"] if meta.get("dtype") in TOLERANCES else _graph_dtype(proto))
    tolerance = tolerance_for(dtype, atol, rtol)
    config = config_of(model)
    rng = np.random.default_rng(SEED)
    notes: list[str] = []
    if inputs is not None:
        if isinstance(inputs, dict):
            feed = check_feed(inputs, specs, "inputs")
        else:
            feed = load_inputs(inputs, specs)
        first = next(iter(feed.values()))
        length = first.shape[1] if config.kind == "text" else None
        if config.kind == "vision" and first.ndim == 4:
            length = tokens_for_image(first.shape[2], first.shape[3], config.patch_size)
        varied, cases = "inputs", [Case("inputs.npz", length, int(first.shape[0]), feed)]
    elif config.kind == "vision":
        varied, cases = _vision_cases(config, specs, meta, seq_lens, batch, rng, notes)
    else:
        varied, cases = _text_cases(config, specs, meta, seq_lens, batch, rng, notes)
    ref_dtype = _reference_dtype(config, cases)
    if ref_dtype != torch.float64:
        notes.append("reference ran in float32: float64 score matrices would exceed "
                     f"{FLOAT64_BUDGET_BYTES / 2**30:.0f} GiB at the largest case")
    input_names = [s.name for s in specs]
    report = VerificationReport(
        onnx_path=str(onnx_path), mode=meta.get("mode") if isinstance(meta.get("mode"), str) else None,
        dtype=dtype, reference=f"pytorch {torch.__version__} parallel form, {str(ref_dtype).removeprefix('torch.')}",
        actual="onnxruntime", tolerance=tolerance, varied=varied, notes=notes)
    with TorchRunner(model, input_names, output_names, compute_dtype=ref_dtype, prepare=_to_parallel) as eager, \
            OnnxRuntimeRunner(onnx_path, optimization=optimization) as ort:
        report.actual = ort.describe()
        for case in _progress(cases, progress):
            try:
                expected = eager.infer(case.feed)
            except (IndexError, RuntimeError) as exc:   # e.g. token ids outside the vocabulary
                raise InputsError(f"the PyTorch model cannot run input case {case.label}: "
                                  f"{' '.join(str(exc).split())[:300]}") from None
            try:
                actual = ort.infer(case.feed)
                outputs = compare_outputs(expected, actual, tolerance, _padding_masks(case.feed, expected))
            except Exception as exc:  # noqa: BLE001 - a graph that cannot run this size fails this case, visibly
                problem = f"onnxruntime failed: {str(exc).splitlines()[0][:300]}"
                outputs = [failed_comparison(name, tuple(out.shape), problem) for name, out in expected.items()]
            result = CaseResult(case.label, case.seq_len, case.batch,
                                {k: list(v.shape) for k, v in case.feed.items()}, outputs)
            report.cases.append(result)
            if on_case is not None:
                on_case(result)
    return report


def _progress(cases: list[Case], show: bool):
    if not show:
        yield from cases
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("verifying", total=len(cases))
        for case in cases:
            bar.update(task, description=f"verifying {case.label}")
            yield case
            bar.advance(task)


__all__ = ["verify_onnx", "default_seq_lens", "default_image_token_counts", "FLOAT64_BUDGET_BYTES"]
