"""verify_onnx / verify_files: prove an exported artefact computes what the eager model (or another artefact)
computes.

Eager PyTorch runs in the parallel form (the direct definition of LION attention, docs/maths.md "Form 1")
on a float64 copy of the model where that fits in memory, onnxruntime runs the file, on the same inputs, at several
sizes: by default the trace length, one other length and one that is not a multiple of the chunk size, so a graph
that silently froze a shape or mishandles a partial last chunk fails. When the model's token count cannot vary
(a learnt position embedding, or an export with static image sizes), batch sizes are varied instead and the report
says so. Text models get padded batches (rows of unequal length); padded positions' outputs are not compared,
since no model defines them.

The bound each output is held to is calibrated by default (calibration.py: eager PyTorch run a second time in
the graph's own dtype and form sets it), or the fixed table (tolerances.py); a user's atol / rtol, global or per
output, replace either. Two files (ONNX or engine) are compared with each other on the same inputs, the first as
the reference; their bound is calibrated too when the checkpoint they came from is known (named, or found beside
them by the sha256 their metadata records), else it is the fixed table of the lower of their precisions.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..artefacts import artefact_kind
from ..build_record import int8_source
from ..dtypes import torch_dtype
from ..forms import FORMS
from ..graph_summary import FORM_KEY, load_onnx_model, metadata
from ..models.presets import config_of
from ..models.vision import patch_grid_for_tokens
from ..runners import Runner, TorchRunner, file_runner, resolve_providers
from .calibration import calibrated_tolerance, quantized_tolerance
from .compare import ERROR_STATS, compare_outputs, failed_comparison
from .fake_quant import apply_plan, is_qdq, read_plan
from .case_inputs import (InputSpec, InputsError, check_feed, graph_input_specs, image_size_for_tokens,
                     load_input_cases, make_image_feed, make_text_feed, save_arrays, tokens_for_image)
from .parity_report import CaseResult, VerificationReport
from .provenance import find_checkpoint, recorded_sha256, sha256_hint
from .task_figures import TaskFigures, check_threshold
from .tolerances import TOLERANCES, Bounds, Tolerance, ToleranceRequest, tolerance_for

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
    return {name: np.asarray(mask).astype(bool) for name, out in expected.items() if out.shape[:2] == mask.shape}


def _graph_dtype(model) -> str:
    import onnx

    types = {v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output]}
    return "fp16" if onnx.TensorProto.FLOAT16 in types else "fp32"


def _file_dtype(proto, meta: dict) -> str:
    return meta["dtype"] if meta.get("dtype") in TOLERANCES else _graph_dtype(proto)


def _reference_dtype(config, cases: list[Case]) -> torch.dtype:
    """float64 unless the largest case's (B, H, L, L) float64 score matrices would exceed the budget."""
    worst = max(c.batch * config.num_heads * (c.seq_len or 1) ** 2 * 8 * 3 for c in cases)
    return torch.float64 if worst <= FLOAT64_BUDGET_BYTES else torch.float32


def _reference_precision(config, cases: list[Case], method: str, dtypes: list[str],
                         notes: list[str]) -> tuple[torch.dtype, str]:
    """The reference's torch dtype and the tolerance method that can apply with it (noted when they fall back):
    an fp32 file cannot be calibrated against a reference that itself ran in float32."""
    ref_dtype = _reference_dtype(config, cases)
    if ref_dtype != torch.float64:
        notes.append("reference ran in float32: float64 score matrices would exceed "
                     f"{FLOAT64_BUDGET_BYTES / 2**30:.0f} GiB at the largest case")
        if method == "calibrated" and set(dtypes) == {"fp32"}:
            notes.append("no calibration: the reference itself ran in float32; the fixed fp32 table applies")
            method = "fixed"
    return ref_dtype, method


def _form_of(graph: _Graph) -> str:
    """The graph form the exporter recorded (metadata FORM_KEY); parallel when it recorded none (engines)."""
    return graph.meta.get(FORM_KEY) if graph.meta.get(FORM_KEY) in FORMS else "parallel"


def _eager_runner(model: torch.nn.Module, graph: _Graph, dtype: str, input_names: list[str]) -> TorchRunner:
    """Eager PyTorch in `dtype` and in the file's own form and chunk size: the yardstick of calibration.py."""
    form, chunk = _form_of(graph), _meta_int(graph.meta, "chunk_size") or config_of(model).chunk_size
    return TorchRunner(model, input_names, graph.output_names, compute_dtype=torch_dtype(dtype),
                       prepare=lambda m: _set_form(m, form, chunk))


def _to_parallel(model: torch.nn.Module) -> None:
    from ..models import set_form

    set_form(model, "parallel")


def _parallel_fake_quantized(plan: list, model: torch.nn.Module) -> None:
    """The reference of an INT8 file: the parallel form, fake-quantized as `plan` (fake_quant.read_plan) says."""
    _to_parallel(model)
    apply_plan(model, plan)


def _tokens(config, feed: dict[str, np.ndarray]) -> int | None:
    """The token count a feed gives the model (text: L of input_ids; vision: patches + the class token)."""
    for array in feed.values():
        if config is None:
            return None
        if config.kind == "text" and array.ndim == 2:
            return int(array.shape[1])
        if config.kind == "vision" and array.ndim == 4:
            return tokens_for_image(array.shape[2], array.shape[3], config.patch_size)
    return None


def _cases(config, specs: list[InputSpec] | None, meta: dict, seq_lens: list[int] | None, batch: int,
           inputs: str | Path | dict[str, np.ndarray] | None) -> tuple[str, list[Case], list[str]]:
    """(what varies, the cases, notes): the user's inputs as they are, else generated ones for the model."""
    notes: list[str] = []
    if inputs is not None:
        if isinstance(inputs, dict):
            feeds = [("inputs", inputs if specs is None else check_feed(inputs, specs, "inputs"))]
        else:
            feeds = load_input_cases(inputs, specs)
        cases = [Case(label, _tokens(config, feed), int(next(iter(feed.values())).shape[0]), feed)
                 for label, feed in feeds]
        return "inputs", cases, notes
    if config is None or specs is None:
        raise ValueError("two engine files carry no model to make inputs for: give the inputs (--load-inputs)")
    rng = np.random.default_rng(SEED)
    if config.kind == "vision":
        varied, cases = _vision_cases(config, specs, meta, seq_lens, batch, rng, notes)
    else:
        varied, cases = _text_cases(config, specs, meta, seq_lens, batch, rng, notes)
    return varied, cases, notes


def _check_request(batch: int, seq_lens: list[int] | None, error_stat: str, min_cosine: float | None = None,
                   min_top1_agreement: float | None = None) -> None:
    check_threshold("min_cosine", min_cosine)
    check_threshold("min_top1_agreement", min_top1_agreement)
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if seq_lens is not None and (not seq_lens or any(n < 2 for n in seq_lens)):
        raise ValueError(f"sequence lengths must be >= 2, got {seq_lens}")
    if error_stat not in ERROR_STATS:
        raise ValueError(f"error_stat must be one of {', '.join(ERROR_STATS)}, got {error_stat!r}")


def _signature_specs(model: torch.nn.Module) -> tuple[list[InputSpec], list[str]]:
    """Input specs and output names of the model's export signature: what an engine built from it takes."""
    from ..export.signature import graph_signature

    signature = graph_signature(model, batch=2, seq_len=None, dtype=torch.float32, static=False)
    specs = [InputSpec(name, np.dtype(str(t.dtype).removeprefix("torch.")), (None,) * t.dim())
             for name, t in zip(signature.input_names, signature.example_inputs)]
    return specs, list(signature.output_names)


@dataclass
class _Graph:
    """What verify knows about one file before running it."""

    path: Path
    kind: str
    specs: list[InputSpec] | None
    output_names: list[str] | None
    meta: dict
    dtype: str | None
    qdq: bool = False           # an INT8 QDQ file (QuantizeLinear / DequantizeLinear nodes), or its engine
    plan_source: Path | None = None     # where the Q/DQ scales are read: the file, or the engine's source file


def _read_file(path: str | Path) -> _Graph:
    kind = artefact_kind(path)
    if kind == "checkpoint":
        raise ValueError(f"{path} is a checkpoint; compare a checkpoint with an .onnx or engine file")
    if kind != "onnx":          # an engine or a served model: the model's signature gives the inputs
        if kind == "engine" and not Path(path).is_file():
            raise ValueError(f"engine file {str(path)!r} does not exist")
        # nothing in an engine says it is INT8: its build record does, and names the QDQ file with its scales
        source = int8_source(path) if kind == "engine" else None
        return _Graph(Path(path), kind, None, None, {}, None, qdq=source is not None, plan_source=source)
    proto = load_onnx_model(path)
    meta = metadata(proto)
    qdq = is_qdq(proto)
    return _Graph(Path(path), kind, graph_input_specs(proto), [o.name for o in proto.graph.output], meta,
                  _file_dtype(proto, meta), qdq, Path(path) if qdq else None)


def _config_from_meta(meta: dict):
    """The model config recorded by the exporter (lion_export/export/metadata.py), or None."""
    from ..models.text import TextConfig
    from ..models.vision import VisionConfig

    data = meta.get("model_config")
    kinds = {c.kind: c for c in (TextConfig, VisionConfig)}
    if not isinstance(data, dict) or data.get("model") not in kinds:
        return None
    try:
        return kinds[data["model"]].from_dict(data)
    except (ValueError, TypeError):
        return None


@dataclass
class _Sides:
    """The runners of one parity run: the reference, the artefact checked, and (calibrated) eager PyTorch in each
    checked file's dtype and form (by label), measured against `baseline` (float64 eager; None: the reference)."""

    expected: Runner
    actual: Runner
    calibration: dict[str, Runner]
    expected_is_model: bool
    baseline: Runner | None = None
    quantized: bool = False     # expected is the fake-quantized model, baseline the float one (quantized_tolerance)
    task_only: bool = False     # a float file against an INT8 one: no elementwise bound
    figures: bool = False       # measure the task-level figures of actual against baseline (else expected)


def _model_infer(runner: Runner, case: Case, who: str) -> dict[str, np.ndarray]:
    """runner.infer, where an input the model cannot take (token ids outside the vocabulary) is bad input."""
    try:
        return runner.infer(case.feed)
    except (IndexError, RuntimeError) as exc:
        raise InputsError(f"{who} cannot run input case {case.label}: {' '.join(str(exc).split())[:300]}") from None


def _run(sides: _Sides, cases: list[Case], report: VerificationReport, request: ToleranceRequest,
         error_stat: str, progress: bool, on_case, keep_outputs: bool) -> dict[str, dict[str, np.ndarray]]:
    """Run every case on every side and compare; returns the outputs when asked to keep them (--save-outputs)."""
    kept: dict[str, dict[str, np.ndarray]] = {}
    with contextlib.ExitStack() as stack:
        expected_runner, actual_runner = stack.enter_context(sides.expected), stack.enter_context(sides.actual)
        calibration = {label: stack.enter_context(r) for label, r in sides.calibration.items()}
        baseline = stack.enter_context(sides.baseline) if sides.baseline is not None else None
        report.reference = expected_runner.describe() + report.reference
        report.actual = actual_runner.describe()
        for index, case in enumerate(_progress(cases, progress)):
            expected = _model_infer(expected_runner, case, "the PyTorch model" if sides.expected_is_model
                                    else expected_runner.name)
            valid = _padding_masks(case.feed, expected)
            measured = {"float64": _model_infer(baseline, case, "the PyTorch model")} if baseline else {}
            eager = {label: runner.infer(case.feed) for label, runner in calibration.items()}
            against = measured.get("float64", expected)
            tolerances = {}
            for name in expected:
                base = tolerance_for(report.dtype)
                if eager:
                    try:
                        base = calibrated_tolerance(against[name], [e[name] for e in eager.values()], report.dtype,
                                                    valid.get(name))
                    except ValueError as exc:    # eager itself overflowed in this dtype: nothing to calibrate on
                        base = dataclasses.replace(base, basis=f"{base.basis} ({exc})")
                if sides.quantized:
                    base = quantized_tolerance(base, expected[name], against[name], valid.get(name))
                if sides.task_only:
                    base = Tolerance(math.inf, 0.0, basis="none: a float file against an INT8 one")
                tolerances[name] = request.apply(base, name)
            actual = None
            try:
                actual = actual_runner.infer(case.feed)
                outputs = compare_outputs(expected, actual, tolerances, valid, error_stat)
                if sides.figures:
                    _add_figures(report, against, actual, valid)
            except Exception as exc:  # noqa: BLE001 - a graph that cannot run this size fails this case, visibly
                problem = f"{actual_runner.name} failed: {str(exc).splitlines()[0][:300]}"
                outputs = [failed_comparison(name, tuple(out.shape), problem) for name, out in expected.items()]
            if keep_outputs:
                kept[f"case{index}/expected"] = expected
                if actual is not None:
                    kept[f"case{index}/actual"] = actual
                kept.update({f"case{index}/{label}": out for label, out in {**measured, **eager}.items()})
            result = CaseResult(case.label, case.seq_len, case.batch,
                                {k: list(v.shape) for k, v in case.feed.items()}, outputs)
            report.cases.append(result)
            if on_case is not None:
                on_case(result)
    return kept


def _add_figures(report: VerificationReport, against: dict[str, np.ndarray], actual: dict[str, np.ndarray],
                 valid: dict[str, np.ndarray]) -> None:
    """Pool one case into the report's task-level figures, one TaskFigures per output the file gave."""
    if not report.task:
        report.task = [TaskFigures(name) for name in against if name in actual]
    for figures in report.task:
        figures.add(against[figures.output], actual[figures.output], valid.get(figures.output))


def _judge_figures(report: VerificationReport, min_cosine: float | None, min_top1_agreement: float | None) -> None:
    """Thresholds the user gave make the task-level figures a check: each shortfall fails the report."""
    for figures in report.task:
        report.failures += figures.shortfalls(min_cosine, min_top1_agreement, report.task_against or "the reference")


def _save(cases: list[Case], kept: dict, save_inputs: str | Path | None, save_outputs: str | Path | None) -> None:
    if save_inputs is not None:
        save_arrays(save_inputs, {f"case{i}": case.feed for i, case in enumerate(cases)})
    if save_outputs is not None:
        save_arrays(save_outputs, kept)


def verify_onnx(model: torch.nn.Module, onnx_path: str | Path, *, seq_lens: list[int] | None = None,
                batch: int = 2, dtype: str | None = None, atol: float | Bounds | None = None,
                rtol: float | Bounds | None = None, tolerance: str = "calibrated", error_stat: str | None = None,
                inputs: str | Path | dict[str, np.ndarray] | None = None, optimization: str = "all",
                providers: str | tuple[str, ...] = "cpu", checkpoint_path: str | Path | None = None,
                save_inputs: str | Path | None = None, save_outputs: str | Path | None = None,
                per_block: bool | None = None, progress: bool = True, min_cosine: float | None = None,
                min_top1_agreement: float | None = None,
                on_case: Callable[[CaseResult], None] | None = None) -> VerificationReport:
    """Run eager `model` (parallel form, float64 where it fits) and `onnx_path` (an .onnx file in onnxruntime, or
    an engine); compare every output against its bound.

    seq_lens: token counts to verify at (default: trace length, another, one not a multiple of the chunk size).
    dtype: "fp32" | "fp16", the file's precision (default: read off the graph; engines: fp32).
    tolerance: "calibrated" (eager in the file's dtype sets each bound, calibration.py) or "fixed" (the table).
    atol, rtol: one number for every output or {output name: number}; replace the method's bound where given.
    error_stat: "max" (every element within its bound), "mean" or "median" of |err| / bound must be <= 1; default
    max, and mean for an INT8 QDQ file (calibration.py says why).
    inputs: an .npz path (one case, or cases saved with save_inputs) or a dict of arrays, instead of generated ones.
    optimization, providers: onnxruntime's graph optimisation level and execution providers ("cpu,cuda", ...).
    checkpoint_path: the file `model` came from; a sha256 differing from the file's metadata is noted.
    save_inputs, save_outputs: .npz files for the inputs run and every side's outputs ("case0/expected/logits").
    per_block: compare every block's mixer and MLP too (blocks.py), on the first failing case (or the first case);
    None (the default) does it only when parity fails, for .onnx files (never for an INT8 file).
    min_cosine, min_top1_agreement: thresholds on the task-level figures (task_figures.py), measured against the
    float model for an INT8 QDQ file (always) and against the reference otherwise (when a threshold is given).
    An INT8 QDQ file is compared with `model` fake-quantized as the file says (fake_quant.py), not the float model.
    Raises ValueError (InputsError / OnnxFileError / ProviderError / FakeQuantError for bad input) before
    anything runs.
    """
    graph = _read_file(onnx_path)
    error_stat = error_stat or ("mean" if graph.qdq else "max")
    _check_request(batch, seq_lens, error_stat, min_cosine, min_top1_agreement)
    request = ToleranceRequest.build(tolerance, atol, rtol)
    provider_names = resolve_providers(providers)
    if graph.specs is None:
        graph.specs, graph.output_names = _signature_specs(model)
    request.check_outputs(graph.output_names)
    dtype = dtype or graph.dtype or "fp32"
    if dtype not in TOLERANCES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {', '.join(TOLERANCES)}")
    config = config_of(model)
    varied, cases, notes = _cases(config, graph.specs, graph.meta, seq_lens, batch, inputs)
    ref_dtype, method = _reference_precision(config, cases, request.method, [dtype], notes)
    input_names = [s.name for s in graph.specs]
    form = _form_of(graph)
    calibration = _eager_runner(model, graph, dtype, input_names) if method == "calibrated" else None
    mode = graph.meta.get(FORM_KEY) if isinstance(graph.meta.get(FORM_KEY), str) else None
    expected = TorchRunner(model, input_names, graph.output_names, compute_dtype=ref_dtype, prepare=_to_parallel)
    float_model = None
    if graph.qdq:
        plan = read_plan(load_onnx_model(graph.plan_source), model)
        float_model = expected
        expected = TorchRunner(model, input_names, graph.output_names, compute_dtype=ref_dtype,
                               prepare=partial(_parallel_fake_quantized, plan))
        built = "" if graph.kind == "onnx" else f" {graph.plan_source.name}, the build record's source of this engine"
        notes.append(f"INT8 QDQ file{built}: the reference is the model fake-quantized as the file says ({len(plan)} "
                     f"linear layers: weights, inputs and outputs rounded with the file's scales); the bound adds "
                     f"half the mean quantization error, judged on the {error_stat} of |err| / bound")
    report = VerificationReport(
        artefact=str(onnx_path), mode=mode, dtype=dtype, reference=", parallel form", actual="",
        tolerance_method=method, error_stat=error_stat, varied=varied, notes=notes,
        calibration=None if calibration is None else f"eager pytorch, {form} form, {dtype}",
        hint=sha256_hint(checkpoint_path, graph.meta), reference_artefact=None if checkpoint_path is None
        else str(checkpoint_path))
    sides = _Sides(expected, file_runner(onnx_path, providers=provider_names, optimization=optimization),
                   {} if calibration is None else {f"eager-{dtype}": calibration}, True, float_model,
                   quantized=graph.qdq, figures=graph.qdq or min_cosine is not None or min_top1_agreement is not None)
    report.task_against = "the float model (eager pytorch)" if graph.qdq else "the reference"
    kept = _run(sides, cases, report, request, error_stat, progress, on_case, save_outputs is not None)
    _save(cases, kept, save_inputs, save_outputs)
    _check_precision(report, graph)
    _judge_figures(report, min_cosine, min_top1_agreement)
    if graph.qdq:
        if per_block:
            report.notes.append("no per-block table: it compares blocks with the float model, and this is an "
                                "INT8 file")
    elif per_block and graph.kind != "onnx":
        report.notes.append("no per-block table: it marks extra outputs in an .onnx file, and this is an engine")
    elif graph.kind == "onnx" and (per_block or (per_block is None and not report.passed)):
        _localise(report, model, graph, cases, input_names, dtype, form, method, request, provider_names,
                  asked=bool(per_block))
    return report


def _localise(report: VerificationReport, model, graph: _Graph, cases: list[Case], input_names: list[str],
              dtype: str, form: str, method: str, request: ToleranceRequest, providers: tuple[str, ...],
              asked: bool) -> None:
    """Fill the report's per-block table on the first failing case; when it was not asked for, a failure to make
    it is a note, never a second error on top of the parity failure."""
    from .blocks import per_block as compare_blocks

    index = next((i for i, r in enumerate(report.cases) if not r.passed), 0)
    chunk = _meta_int(graph.meta, "chunk_size") or config_of(model).chunk_size
    try:
        rows, summary = compare_blocks(model, graph.path, cases[index].feed, input_names, dtype=dtype, form=form,
                                       chunk_size=chunk, method=method, request=request, providers=providers)
    except Exception as exc:  # noqa: BLE001 - see the docstring
        if asked:
            raise
        report.notes.append(f"no per-block table: {' '.join(str(exc).split())[:200]}")
        return
    report.blocks, report.block_case, report.block_finding = rows, cases[index].label, summary


def verify_files(reference_path: str | Path, actual_path: str | Path, *, model: torch.nn.Module | None = None,
                 checkpoint_path: str | Path | None = None, tolerance: str = "calibrated",
                 seq_lens: list[int] | None = None, batch: int = 2, dtype: str | None = None,
                 atol: float | Bounds | None = None, rtol: float | Bounds | None = None,
                 error_stat: str | None = None, inputs: str | Path | dict[str, np.ndarray] | None = None,
                 optimization: str = "all", providers: str | tuple[str, ...] = "cpu",
                 save_inputs: str | Path | None = None,
                 save_outputs: str | Path | None = None, progress: bool = True, min_cosine: float | None = None,
                 min_top1_agreement: float | None = None,
                 on_case: Callable[[CaseResult], None] | None = None) -> VerificationReport:
    """Run two files (.onnx or engines) on the same inputs and compare the second against the first.

    Inputs are generated once, in the first file's dtypes, from the model config (recorded in an .onnx file's
    metadata) or given with `inputs`; each file takes them in the dtypes it declares. The bound is calibrated as
    in verify_onnx when the checkpoint both files came from is known: eager PyTorch in each file's dtype and form
    against float64, the two errors added (calibration.py). The checkpoint is `model` (already loaded; with
    `checkpoint_path` its sha256 is checked against the files), else `checkpoint_path`, else a checkpoint beside
    the files whose sha256 their metadata records (provenance.py). With none, or tolerance="fixed", the fixed
    table of the lower precision applies: the last resort, and the report says which and why.
    A float file against an INT8 QDQ one (either way round) has no elementwise bound: the report gives the
    task-level figures of the second against the first, which fail it only below min_cosine / min_top1_agreement.
    Other arguments as verify_onnx.
    """
    error_stat = error_stat or "max"
    _check_request(batch, seq_lens, error_stat, min_cosine, min_top1_agreement)
    request = ToleranceRequest.build(tolerance, atol, rtol)
    provider_names = resolve_providers(providers)
    first, second = _read_file(reference_path), _read_file(actual_path)
    notes: list[str] = []
    task_only = first.qdq != second.qdq
    if model is None and request.method == "calibrated" and not task_only:
        model, checkpoint_path = _files_checkpoint(checkpoint_path, (first, second), notes)
    described = first if first.specs is not None else second
    if described.specs is None and model is not None:
        described.specs, described.output_names = _signature_specs(model)
    specs, output_names = described.specs, described.output_names
    for graph in (first, second):         # an engine's signature is the .onnx file's (or the model's)
        if graph.kind == "engine":
            graph.specs, graph.output_names = specs, output_names
    if output_names is not None:
        request.check_outputs(output_names)
    for graph in (first, second):
        if graph.specs is not None and [s.name for s in graph.specs] != [s.name for s in specs]:
            raise ValueError(f"{first.path.name} and {second.path.name} take different inputs: "
                             f"{[s.name for s in first.specs]} vs {[s.name for s in graph.specs]}")
    dtypes = {g.dtype for g in (first, second) if g.dtype is not None}
    dtype = dtype or ("fp16" if "fp16" in dtypes else "fp32")
    if dtype not in TOLERANCES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {', '.join(TOLERANCES)}")
    config = config_of(model) if model is not None else _config_from_meta(described.meta)
    if config is None and inputs is None:
        raise ValueError(f"{described.path.name} records no model config to make inputs for: give the inputs "
                         "(--load-inputs) or the checkpoint (--checkpoint)")
    varied, cases, case_notes = _cases(config, specs, described.meta, seq_lens, batch, inputs)
    notes += case_notes
    file_dtypes = [g.dtype or dtype for g in (first, second)]
    method, baseline, calibration = "fixed", None, {}
    if model is not None and request.method == "calibrated":
        ref_dtype, method = _reference_precision(config, cases, "calibrated", file_dtypes, notes)
        names = [s.name for s in specs]
        baseline = TorchRunner(model, names, output_names, compute_dtype=ref_dtype, prepare=_to_parallel)
        calibration = {f"eager-{d} for {side}": _eager_runner(model, g, d, names)
                       for side, g, d in zip(("expected", "actual"), (first, second), file_dtypes)}
    if task_only:
        method, calibration, baseline = "none", {}, None
    elif method == "fixed":
        calibration, baseline = {}, None
        why = ("as asked" if request.method == "fixed" else "the reference ran in float32" if model is not None
               else "no checkpoint to calibrate against, the last resort: name it with --checkpoint, or keep it "
               "beside the files")
        notes.append(f"file against file: the fixed {dtype} table applies ({why})")
    report = VerificationReport(
        artefact=str(actual_path), mode=second.meta.get(FORM_KEY) if isinstance(second.meta.get(FORM_KEY), str)
        else None, dtype=dtype, reference=f", {first.path.name}", actual="", tolerance_method=method,
        error_stat=error_stat, varied=varied, notes=notes, reference_artefact=str(reference_path),
        calibration=None if not calibration else "eager pytorch in each file's dtype and form (" + ", ".join(
            f"{d} {_form_of(g)}" for g, d in zip((first, second), file_dtypes)) + ") vs float64, errors added",
        hint=next(filter(None, (sha256_hint(checkpoint_path, g.meta) for g in (first, second))), None))
    sides = _Sides(file_runner(reference_path, providers=provider_names, optimization=optimization),
                   file_runner(actual_path, providers=provider_names, optimization=optimization), calibration, False,
                   baseline, task_only=task_only,
                   figures=task_only or min_cosine is not None or min_top1_agreement is not None)
    report.task_against = first.path.name
    kept = _run(sides, cases, report, request, error_stat, progress, on_case, save_outputs is not None)
    _save(cases, kept, save_inputs, save_outputs)
    _check_precision(report, second)
    _judge_figures(report, min_cosine, min_top1_agreement)
    return report


def _files_checkpoint(checkpoint_path: str | Path | None, graphs: tuple[_Graph, _Graph],
                      notes: list[str]) -> tuple[torch.nn.Module | None, Path | None]:
    """The model two files were exported from, and its path: the checkpoint named (a file that cannot be read is
    bad input), else one beside the files whose sha256 their metadata records (one that cannot be read is a note:
    the comparison falls back to the fixed table)."""
    from ..checkpoints import read_model

    if checkpoint_path is not None:
        return read_model(checkpoint_path), Path(checkpoint_path)
    recorded = next(filter(None, (recorded_sha256(g.meta) for g in graphs)), None)
    found = None if recorded is None else find_checkpoint(recorded, (g.path.parent for g in graphs))
    if found is None:
        return None, None
    try:
        model = read_model(found)
    except ValueError as exc:           # CheckpointError: e.g. a public file that needs --config
        notes.append(f"{found} matches the files' checkpoint sha256 but cannot be read ({' '.join(str(exc).split())})")
        return None, None
    notes.append(f"calibrated on {found}, found beside the files: its sha256 matches their metadata")
    return model, found


def _check_precision(report: VerificationReport, graph: _Graph) -> None:
    """An fp16 .onnx file must keep its decay path in fp32 (precision.py): a failure of its own."""
    from .precision import fp16_decay_nodes

    if graph.kind == "onnx" and graph.dtype == "fp16":
        report.failures += [f"{graph.path.name}: {problem}: the decay path must compute in fp32 (onnxruntime's "
                            "CPU provider upcasts such nodes, so parity here cannot show it; TensorRT does not)"
                            for problem in fp16_decay_nodes(graph.path)]


def _set_form(model: torch.nn.Module, form: str, chunk_size: int) -> None:
    from ..models import set_form

    set_form(model, form, chunk_size)


def _progress(cases: list[Case], show: bool):
    if not show:
        yield from cases
        return
    from rich.console import Console

    from ..progress import items

    yield from items(Console(stderr=True), cases, len(cases), lambda case: f"verifying {case.label}")


__all__ = ["verify_onnx", "verify_files", "default_seq_lens", "default_image_token_counts", "FLOAT64_BUDGET_BYTES"]
