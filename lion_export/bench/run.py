"""`lion-export bench`: latency and peak memory of a checkpoint's forms on each backend, over sequence lengths.

Plan: every (mode, backend) series plus the softmax-attention twin (lion_export.bench.baseline) on each backend,
at every length. Graphs are exported once per series (dynamic axes) into a temporary directory; each point then
runs in its own interpreter (lion_export.bench.worker). What cannot run is recorded with a reason instead of
failing the run: a backend that is absent ("skipped"), a length the model cannot take ("skipped"), a quadratic
form whose score matrices would not fit in memory ("out_of_memory", estimated, not run), a point that raised an
out-of-memory error or was killed ("out_of_memory"), one past the time limit ("timeout") or any other failure
("error"). Results: bench.json (machine, settings, every point) and bench.png in --out.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..artefacts import ENGINE_SUFFIX
from ..atomic import write_bytes_atomically
from ..dtypes import GRAPH_DTYPES
from ..forms import FORMS

#: where a series runs (`--backends`): eager PyTorch, onnxruntime on the exported graph, a TensorRT engine
RUNTIMES = ("eager", "onnxruntime", "tensorrt")
SOFTMAX = "softmax"
# bytes per (B, H, L, L) element that a quadratic form holds at its peak: measured, the softmax graph in
# onnxruntime peaked at ~8 fp32 L x L matrices (17 GB at L = 16384, 2 heads); the fp32 decay matrices of an fp16
# parallel form cost about as much
_QUADRATIC_BYTES = {"fp32": 4 * 8, "fp16": 4 * 8}


class BenchError(ValueError):
    """A bench request that cannot be run as asked (bad option, unreadable checkpoint); one line."""


@dataclass(frozen=True)
class BenchRequest:
    """Everything `lion-export bench` takes; validated by `check`."""

    checkpoint: Path
    forms: tuple[str, ...] = FORMS
    backends: tuple[str, ...] = RUNTIMES
    seq_lens: tuple[int, ...] = (256, 1024, 4096, 16384)
    batch: int = 1
    dtype: str = "fp32"
    threads: int = 1
    out: Path = Path(".")
    chunk_size: int = 64
    warmup: int = 2
    repeats: int = 5
    budget_s: float = 10.0
    point_timeout_s: float = 600.0
    softmax_baseline: bool = True

    def check(self) -> None:
        for name, values, valid in (("--modes", self.forms, FORMS), ("--backends", self.backends, RUNTIMES)):
            unknown = [v for v in values if v not in valid]
            if not values or unknown:
                raise BenchError(f"{name}: unknown {', '.join(map(repr, unknown)) or 'empty list'}; "
                                 f"choose from {', '.join(valid)}")
        if self.dtype not in GRAPH_DTYPES:
            raise BenchError(f"--dtype must be one of {', '.join(GRAPH_DTYPES)}, got {self.dtype!r}")
        if not self.seq_lens or any(n < 2 for n in self.seq_lens):
            raise BenchError(f"--seq-lens must be integers >= 2, got {list(self.seq_lens)}")
        for name in ("batch", "threads", "chunk_size", "repeats"):
            if getattr(self, name) < 1:
                raise BenchError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)}")
        if self.warmup < 0:
            raise BenchError(f"--warmup must be >= 0, got {self.warmup}")
        if self.out.exists() and not self.out.is_dir():
            raise BenchError(f"--out {self.out} is not a directory")


@dataclass
class Series:
    """One line of the plot: a form of the LION model (or the softmax twin) on one backend."""

    series: str           # "chunked/onnxruntime", "softmax/eager", ...
    model: str            # "lion" | "softmax"
    form: str
    backend: str
    skipped: str | None = None
    graph: str | None = None
    points: list[dict[str, Any]] = field(default_factory=list)


def _plan(request: BenchRequest) -> list[Series]:
    plan = [Series(f"{form}/{backend}", "lion", form, backend) for form in request.forms for backend in request.backends]
    if request.softmax_baseline:
        plan += [Series(f"{SOFTMAX}/{backend}", SOFTMAX, "parallel", backend) for backend in request.backends]
    return plan


def _tensorrt_absence() -> str | None:
    """Why the tensorrt backend cannot run here, or None when it can."""
    import torch

    if not torch.cuda.is_available():
        return "needs a CUDA GPU (none on this machine)"
    try:
        from ..engine.backend import BackendError, load_backend
    except ImportError:
        return "lion_export.engine is not part of this installation"
    try:
        load_backend()
    except BackendError as error:
        return str(error)
    return None


def _length_problem(config, length: int) -> str | None:
    """Why the model cannot take `length` tokens at all (a fixed or bounded sequence axis), or None."""
    if config.kind == "vision" and config.pos_embed and length != config.num_patches + 1:
        return (f"the learnt position embedding fixes this model at {config.num_patches + 1} tokens "
                f"({config.img_size}x{config.img_size} images)")
    if config.kind == "text" and length > config.max_len:
        return f"longer than the model's max_len ({config.max_len})"
    if config.kind == "vision" and not config.pos_embed:
        from ..models.vision import patch_grid_for_tokens

        if min(patch_grid_for_tokens(length)) < 2:
            return f"{length - 1} patches have no image of at least 2x2 patches (the exported graphs need one)"
    return None


def describe_inputs(config, length: int, batch: int) -> dict[str, Any]:
    """What the worker feeds at `length` tokens: near-square images (vision models) or (B, L) token ids (text)."""
    if config.kind == "vision":
        from ..verify.case_inputs import image_size_for_tokens

        height, width = ((config.img_size,) * 2 if config.pos_embed
                         else image_size_for_tokens(length, config.patch_size))
        return {"kind": "vision", "shape": [batch, config.in_chans, height, width]}
    return {"kind": "text", "shape": [batch, length], "vocab_size": config.vocab_size}


def _available_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as handle:
            return next(int(line.split()[1]) for line in handle if line.startswith("MemAvailable:")) * 1024
    except (OSError, StopIteration):
        return None


def _quadratic_estimate(config, series: Series, length: int, request: BenchRequest) -> int:
    """Bytes of the (B, H, L, L) matrices a quadratic form (parallel, softmax) holds at once; 0 for the others."""
    if series.form != "parallel":
        return 0
    return request.batch * config.num_heads * length * length * _QUADRATIC_BYTES[request.dtype]


def _export_graph(model, series: Series, request: BenchRequest, folder: Path, graphs: dict[str, Path]) -> str:
    from ..export import export_onnx
    from .baseline import softmax_twin

    source = softmax_twin(model) if series.model == SOFTMAX else model
    key = f"{series.model}_{series.form}"
    path = Path(graphs[key]) if key in graphs else folder / f"{key}.onnx"
    if not path.exists():
        export_onnx(source, path, form=series.form, chunk_size=request.chunk_size, dtype=request.dtype, batch=2)
    if series.backend == "tensorrt":
        from ..engine.build import build_engine

        engine = path.with_suffix(ENGINE_SUFFIX)
        if not engine.exists():
            build_engine(path, engine)
        return str(engine)
    return str(path)


def _run_point(spec: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    command = [sys.executable, "-m", "lion_export.bench.worker", json.dumps(spec)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parents[2]),
                                                                     os.environ.get("PYTHONPATH")]))}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "reason": f"did not finish within {timeout_s:.0f} s"}
    if done.returncode < 0:
        signal = -done.returncode
        status = "out_of_memory" if signal == 9 else "error"
        return {"status": status, "reason": f"worker killed by signal {signal}"
                + (" (the out-of-memory killer?)" if signal == 9 else "")}
    lines = done.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = " ".join(done.stderr.split())[-300:]
        return {"status": "error", "reason": f"worker exited {done.returncode}: {tail}"}


Progress = Callable[[str, int, int], None]


def run_bench(request: BenchRequest, progress: Progress | None = None,
              graphs: dict[str, str | Path] | None = None, model: Any = None) -> dict[str, Any]:
    """Run the benchmark; writes bench.json and bench.png into request.out and returns the JSON document.

    model: the model of request.checkpoint when the caller has read it already (e.g. a public LION file, read
    with options); otherwise the checkpoint is loaded with lion_export.load_checkpoint. The workers load a
    lion-export copy of it saved in the temporary directory, so they never unpickle anything.
    progress(description, done, total) is called before each point and once at the end.
    graphs: already exported .onnx files to time instead of exporting again, keyed "lion_chunked",
    "lion_recurrent", "lion_parallel" or "softmax_parallel" (they must come from the same checkpoint).
    """
    from ..checkpoints import CheckpointError, load_checkpoint, save_checkpoint
    from .machine import describe_machine
    from .length_plot import plot_bench

    request.check()
    report = progress or (lambda _text, _done, _total: None)
    if model is None:
        try:
            model = load_checkpoint(request.checkpoint)
        except CheckpointError as error:
            raise BenchError(str(error)) from None
    config = model.config
    request.out.mkdir(parents=True, exist_ok=True)
    plan = _plan(request)
    trt_absent = _tensorrt_absence() if "tensorrt" in request.backends else None
    total = len(plan) * len(request.seq_lens)
    done = 0
    started = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="lion-bench-"))
    try:
        worker_checkpoint = save_checkpoint(model, folder / "model.pt")
        for series in plan:
            if series.backend == "tensorrt" and trt_absent:
                series.skipped = trt_absent
            for length in request.seq_lens:
                report(f"{series.series} L={length}", done, total)
                done += 1
                point: dict[str, Any] = {"series": series.series, "model": series.model, "mode": series.form,
                                         "backend": series.backend, "seq_len": length}
                problem = series.skipped or _length_problem(config, length)
                needed, available = _quadratic_estimate(config, series, length, request), _available_bytes()
                if problem:
                    point.update(status="skipped", reason=problem)
                elif available is not None and needed > available // 2:
                    point.update(status="out_of_memory", reason=f"not run: its L x L score matrices need "
                                 f"~{needed / 2**30:.1f} GiB, over half the {available / 2**30:.1f} GiB available")
                else:
                    if series.backend != "eager" and series.graph is None:
                        try:
                            series.graph = _export_graph(model, series, request, folder, graphs or {})
                        except Exception as error:  # noqa: BLE001 - a series that cannot export is recorded
                            series.skipped = f"export failed: {' '.join(str(error).split())[:300]}"
                            point.update(status="error", reason=series.skipped)
                            series.points.append(point)
                            continue
                    spec = {"checkpoint": str(worker_checkpoint), "series": series.model, "form": series.form, "backend": series.backend,
                            "graph": series.graph, "inputs": describe_inputs(config, length, request.batch), "batch": request.batch,
                            "dtype": request.dtype, "threads": request.threads, "chunk_size": request.chunk_size,
                            "warmup": request.warmup, "repeats": request.repeats, "budget_s": request.budget_s}
                    point.update(_run_point(spec, request.point_timeout_s))
                series.points.append(point)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    report("done", total, total)
    points = [p for s in plan for p in s.points]
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(request).items()}
    document = {"machine": describe_machine(), "model": config.to_dict(), "settings": settings,
                "seconds": round(time.perf_counter() - started, 1),
                "series": [{"series": s.series, "skipped": s.skipped} for s in plan], "points": points}
    title = (f"{config.kind} model, dim {config.dim}, depth {config.depth}, {config.num_heads} heads "
             f"({config.mask}), batch {request.batch}, {request.dtype}, {request.threads} thread(s)")
    plot_bench(points, title, request.out / "bench.png")
    write_bytes_atomically(request.out / "bench.json", json.dumps(document, indent=1).encode() + b"\n")
    return document


def series_lines(document: dict[str, Any]) -> list[str]:
    """bench.json as one line per series: each length's median latency and peak memory, or why it has none."""
    lines = []
    for series in document["series"]:
        cells = [f"L={p['seq_len']}: " + (f"{p['median_ms']:.1f} ms / {p['peak_mib']:.0f} MiB"
                                          if p["status"] == "ok" else p["status"])
                 for p in document["points"] if p["series"] == series["series"]]
        shown = f"(skipped: {series['skipped']})" if series["skipped"] else "; ".join(cells)
        lines.append(f"{series['series']:<22} {shown}")
    return lines


__all__ = ["RUNTIMES", "BenchError", "BenchRequest", "run_bench", "series_lines"]
