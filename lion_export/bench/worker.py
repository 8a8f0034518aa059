"""One benchmark point, in a fresh interpreter: `python -m lion_export.bench.worker SPEC_JSON` prints one JSON line.

Why a process per point: a run's peak memory is only meaningful when nothing earlier in the same process (another
length's buffers, another backend's arena) is still held, and a point that exhausts memory must not take the
whole benchmark down. The parent (lion_export.bench.run) turns a crash, a kill or a timeout of this process into a
recorded status.

Timing: each backend runs behind the runner layer (lion_export.runners, what verify and `lion_export.load` use),
and only its `infer` is timed (numpy in, numpy out, so a GPU run includes its copies): `warmup` untimed runs, then
up to `repeats` timed runs (at least 3 unless one run alone exceeds the time budget). Peak memory: what the runs (warm-up included) allocate beyond what the process holds before them (model or
session and inputs in place): on the CPU the kernel's peak-RSS counter (VmHWM), reset through /proc/self/clear_refs first (the
lifetime peak, ru_maxrss, where that file is not writable; the JSON says which); for eager PyTorch on a GPU,
torch.cuda's peak allocated bytes. Denormal floats are flushed to zero (LION-S decay products reach the denormal
range, where x86 CPUs slow down 10-50x): the measurement is of the model, not of denormal arithmetic.
"""
from __future__ import annotations

import json
import resource
import sys
import time
from typing import Any

import numpy as np

from ..dtypes import numpy_dtype
from ..runners.base import Runner
from .memory import reset_peak_rss, status_kib

MIB = 2**20


def make_feed(inputs: dict[str, Any], dtype: str) -> dict[str, np.ndarray]:
    """The graph's inputs from the parent's description (lion_export.bench.run.describe_inputs): standard-normal
    images, or random token ids with a full attention mask. Built here from numpy alone, so an onnxruntime point
    never pays for importing torch."""
    rng = np.random.default_rng(0)
    if inputs["kind"] == "vision":
        images = rng.standard_normal(inputs["shape"])
        return {"images": images.astype(numpy_dtype(dtype))}
    shape = tuple(inputs["shape"])
    return {"input_ids": rng.integers(0, inputs["vocab_size"], shape).astype(np.int64),
            "attention_mask": np.ones(shape, dtype=np.int64)}


def _load_model(spec: dict[str, Any]):
    from ..checkpoints import load_checkpoint
    from ..models import set_form
    from .baseline import softmax_twin

    model = load_checkpoint(spec["checkpoint"])          # the parent's lion-export copy: no pickles, no options
    if spec["series"] == "softmax":
        return softmax_twin(model)
    return set_form(model, spec["form"], spec["chunk_size"])


def _eager_runner(spec: dict[str, Any], feed: dict[str, np.ndarray]) -> tuple[Runner, Any]:
    import torch

    from ..export.signature import graph_signature
    from ..runners.eager import TorchRunner

    torch.set_num_threads(spec["threads"])
    torch.set_flush_denormal(True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = _load_model(spec).to(device)
    # the names and count of the outputs are the export's (the softmax twin keeps its LION model's config)
    outputs = graph_signature(model, batch=2, seq_len=None, dtype=torch.float32, static=False).output_names
    runner = TorchRunner(model, list(feed), list(outputs),
                         compute_dtype=torch.float16 if spec["dtype"] == "fp16" else torch.float32)
    return runner, torch if device == "cuda" else None


def _onnxruntime_runner(spec: dict[str, Any], feed: dict[str, np.ndarray]) -> tuple[Runner, None]:
    import onnxruntime as ort

    from ..runners.onnx_runtime import OnnxRuntimeRunner

    # a CUDA provider that does not start is run on the CPU and said so in the point (the runner's warnings)
    providers = tuple(p for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
                      if p in ort.get_available_providers())
    return OnnxRuntimeRunner(spec["graph"], providers=providers, threads=spec["threads"], allow_fallback=True,
                             flush_denormals=True), None


def _tensorrt_runner(spec: dict[str, Any], feed: dict[str, np.ndarray]) -> tuple[Runner, Any]:
    import torch

    from ..runners.files import engine_runner

    return engine_runner(spec["graph"]), torch


RUNNERS = {"eager": _eager_runner, "onnxruntime": _onnxruntime_runner, "tensorrt": _tensorrt_runner}


def _is_out_of_memory(error: BaseException) -> bool:
    text = f"{type(error).__name__} {error}".lower()
    return isinstance(error, MemoryError) or any(s in text for s in ("out of memory", "bad_alloc", "failed to allocate",
                                                                    "outofmemory", "cannot allocate"))


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Time one point and measure its peak memory; never raises (failures are a status)."""
    try:
        feed = make_feed(spec["inputs"], spec["dtype"])
        runner, cuda = RUNNERS[spec["backend"]](spec, feed)
        with runner:
            times, peak, base, counter = _time_runs(runner, feed, spec, cuda)
            backend = "; ".join([runner.describe(), *getattr(runner, "warnings", [])])
    except Exception as error:  # noqa: BLE001 - every failure of a point is data, reported to the parent
        status = "out_of_memory" if _is_out_of_memory(error) else "error"
        return {"status": status, "reason": " ".join(f"{type(error).__name__}: {error}".split())[:300]}
    ms = np.array(times) * 1e3
    return {"status": "ok", "backend_detail": backend, "runs": len(ms), "median_ms": float(np.median(ms)),
            "min_ms": float(ms.min()), "max_ms": float(ms.max()), "q1_ms": float(np.percentile(ms, 25)),
            "q3_ms": float(np.percentile(ms, 75)), "times_ms": [round(float(t), 4) for t in ms],
            "peak_mib": max(peak - base, 0) / MIB, "peak_counter": counter}


def _time_runs(runner: Runner, feed: dict[str, np.ndarray], spec: dict[str, Any],
               cuda: Any) -> tuple[list[float], int, int, str]:
    """(seconds per timed `infer`, peak bytes, bytes before the runs, which counter) on an entered runner."""
    # the peak is taken from before the warm-up: an arena allocator (onnxruntime's, CUDA's caching one) keeps
    # what the first run allocated, so later runs alone would show almost nothing
    if cuda is not None:
        cuda.cuda.synchronize()
        cuda.cuda.reset_peak_memory_stats()
        base = cuda.cuda.memory_allocated()
        counter = "torch.cuda.max_memory_allocated" + (
            " (what torch allocates; not TensorRT's own workspace)" if spec["backend"] == "tensorrt" else "")
    else:
        counter = "VmHWM after reset" if reset_peak_rss() else "ru_maxrss (lifetime)"
        base = status_kib("VmRSS") * 1024
    for _ in range(spec["warmup"]):
        runner.infer(feed)
    times: list[float] = []
    while len(times) < spec["repeats"]:
        start = time.perf_counter()
        runner.infer(feed)          # numpy in, numpy out: a GPU run includes its copies and its synchronisation
        times.append(time.perf_counter() - start)
        if sum(times) > spec["budget_s"] and (len(times) >= 3 or times[0] > spec["budget_s"]):
            break
    if cuda is not None:
        peak = cuda.cuda.max_memory_allocated()
    elif counter.startswith("VmHWM"):
        peak = status_kib("VmHWM") * 1024
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return times, peak, base, counter


def main() -> None:
    print(json.dumps(measure(json.loads(sys.argv[1]))), flush=True)


if __name__ == "__main__":
    main()
