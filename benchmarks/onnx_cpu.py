"""Benchmark: onnxruntime on the CPU vs eager PyTorch for a tiny LION-S vision model (issue 3, Performance).

Model: one LION-S block at vit-tiny width (dim 192, 3 heads of 64), patch 1 and 1 input channel, so the token
count L = img_size^2 + 1 can sweep 257 .. 16385 while the patch embedding stays negligible; MLP ratio 1 keeps the
block's non-attention work small next to the mixer. Implementations, each (implementation, L) point in a fresh
subprocess so one point's allocations cannot inflate another's peak:
    ort-chunked / ort-recurrent / ort-parallel : the exported file (lion_export.export.export_onnx) in onnxruntime
    torch-parallel                             : the eager model in the parallel form
    torch-token-loop                           : the eager model in the recurrent form, a Python loop over tokens
                                                 (lion_export/forms/recurrent.py; the public code's RNN form)
Latency is the best of a few runs after one warm-up. Peak memory is what a run allocates (activations, scratch,
the output): the child's peak RSS during the runs minus its RSS just before them (model / session and inputs
already in place). The kernel's peak counter (VmHWM) is reset first through /proc/self/clear_refs, so the
transient peak of building the session or model does not count; where that file is not writable the lifetime
peak (getrusage ru_maxrss) is used instead and the JSON says so.
Every implementation runs on `--threads` threads (default 1: on a shared 2-core machine, multi-threaded runs
measured up to 5x run-to-run spread, single-threaded ones far less; it is also the like-for-like comparison).
Denormal floats are flushed to zero in every implementation (torch.set_flush_denormal, onnxruntime's
session.set_denormal_as_zero): LION-S decay products over many tokens reach the denormal range, where x86 CPUs
slow down by 10-50x (measured here: eager parallel at L = 257 took 552 ms instead of 13 ms), which would turn the
comparison into a measurement of denormal handling. `--keep-denormals` measures the libraries' defaults instead.
The goals (ORT chunked >= 2x eager parallel, ORT recurrent >= 3x the token loop at L = 4097) are also checked
head to head in one process, runs interleaved, so both sides see the same machine state.

    python benchmarks/onnx_cpu.py            # L = 257 .. 16385 (several minutes on 2 cores)
    python benchmarks/onnx_cpu.py --quick    # L = 257, 1025 and the L = 4097 goals
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from plotting import plot_latency_and_memory

from lion_export.bench.memory import reset_peak_rss, status_kib

DIM, HEADS, DEPTH, MLP_RATIO, CHUNK = 192, 3, 1, 1.0, 64
SIDES = {"full": [16, 32, 45, 64, 90, 128], "quick": [16, 32]}     # L = side^2 + 1
GOAL_SIDE = 64                                                      # L = 4097
PARALLEL_MAX_L = 8192      # beyond this the (B, H, L, L) float32 score matrices need > 10 GiB on a 24 GiB machine
IMPLEMENTATIONS = ("ort-chunked", "ort-recurrent", "ort-parallel", "torch-parallel", "torch-token-loop")


def build_model(side: int):
    """The benchmark model, seeded, so parent and children build identical weights."""
    import torch

    from lion_export.models import create_model

    torch.manual_seed(0)
    return create_model("vit-tiny", mask="selective", dim=DIM, depth=DEPTH, num_heads=HEADS, mlp_ratio=MLP_RATIO,
                        img_size=side, patch_size=1, in_chans=1, num_classes=10, chunk_size=CHUNK).eval()


def onnx_path(folder: Path, mode: str, side: int) -> Path:
    return folder / f"lion_s_{mode}_{side * side + 1}.onnx"


def export_all(folder: Path, sides: list[int]) -> None:
    """One export per (mode, L): a vision model's token count is fixed by its image size."""
    from lion_export.export import export_onnx

    for side in sides:
        model = build_model(side)
        for mode in ("chunked", "recurrent", "parallel"):
            if mode == "parallel" and side * side + 1 > PARALLEL_MAX_L:
                continue
            start = time.perf_counter()
            export_onnx(model, onnx_path(folder, mode, side), form=mode, chunk_size=CHUNK, batch=2)
            print(f"exported {mode:>9} L={side * side + 1:>5} in {time.perf_counter() - start:.1f} s", flush=True)


def make_runner(implementation: str, side: int, folder: Path, threads: int, flush_denormals: bool = True):
    """A zero-argument callable running one forward pass of `implementation` on a (1, 1, side, side) image."""
    import numpy as np

    image = np.random.default_rng(0).standard_normal((1, 1, side, side)).astype(np.float32)
    if implementation.startswith("ort-"):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        if flush_denormals:
            options.add_session_config_entry("session.set_denormal_as_zero", "1")
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(onnx_path(folder, implementation[4:], side)), options,
                                       providers=["CPUExecutionProvider"])
        return lambda: session.run(None, {"images": image})
    import torch

    from lion_export.models import set_form

    torch.set_flush_denormal(flush_denormals)
    torch.set_num_threads(threads)
    model = set_form(build_model(side), "parallel" if implementation == "torch-parallel" else "recurrent")
    tensor = torch.from_numpy(image)

    def run():
        with torch.inference_mode():
            return model(tensor)
    return run


def best_time(run, budget_s: float = 3.0, max_repeats: int = 7) -> float:
    """Best of up to `max_repeats` timed runs (after one warm-up), stopping once `budget_s` is spent."""
    run()
    times: list[float] = []
    spent = 0.0
    while len(times) < max_repeats and (not times or spent < budget_s):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
        spent += times[-1]
    return min(times)


def child_point(implementation: str, side: int, folder: Path, threads: int, flush: bool) -> dict:
    """Runs in a fresh interpreter: latency and extra peak memory of one (implementation, L) point."""
    run = make_runner(implementation, side, folder, threads, flush)
    reset = reset_peak_rss()
    base = status_kib("VmRSS")
    seconds = best_time(run)
    peak = status_kib("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": seconds, "peak_mib": max(peak - base, 0) / 1024,
            "peak_counter": "VmHWM after reset" if reset else "ru_maxrss (lifetime)"}


def child_goals(folder: Path, threads: int, flush: bool) -> dict:
    """Runs in a fresh interpreter: the two goal comparisons at L = 4097, interleaved runs in one process."""
    runners = {name: make_runner(name, GOAL_SIDE, folder, threads, flush)
               for name in ("ort-chunked", "torch-parallel", "ort-recurrent", "torch-token-loop")}
    for run in runners.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(5):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: min(t) for name, t in times.items()}


def in_subprocess(options: list[str], *args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *options, "--child", *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def plot(rows: list[dict], path: Path, threads: int) -> None:
    plot_latency_and_memory(rows, "implementation", IMPLEMENTATIONS, "peak memory of a run (MiB)",
                            f"LION-S ViT block (dim {DIM}, {HEADS} heads, depth {DEPTH}, chunk {CHUNK}), batch 1, "
                            f"CPU, {threads} thread(s)", path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="L = 257 and 1025, plus the L = 4097 goals")
    parser.add_argument("--threads", type=int, default=1, help="threads for every implementation (default 1)")
    parser.add_argument("--keep-denormals", action="store_true",
                        help="do not flush denormals to zero (the libraries' defaults)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        flush = not args.keep_denormals
        result = (child_goals(Path(rest[0]), args.threads, flush) if kind == "goals"
                  else child_point(kind, int(rest[0]), Path(rest[1]), args.threads, flush))
        print(json.dumps(result))
        return

    sides = SIDES["quick" if args.quick else "full"]
    child_options = ["--threads", str(args.threads)] + (["--keep-denormals"] if args.keep_denormals else [])
    with tempfile.TemporaryDirectory(prefix="lion-onnx-bench-") as tmp:
        folder = Path(tmp)
        export_all(folder, sorted(set(sides) | {GOAL_SIDE}))
        rows = []
        print(f"{'L':>6} {'implementation':>17} {'ms':>10} {'peak MiB':>10} {'KiB/token':>10}")
        for side in sides:
            length = side * side + 1
            for name in IMPLEMENTATIONS:
                if name.endswith("parallel") and length > PARALLEL_MAX_L:
                    continue
                result = in_subprocess(child_options, name, str(side), str(folder))
                rows.append({"implementation": name, "L": length, **result})
                print(f"{length:>6} {name:>17} {result['seconds'] * 1e3:>10.1f} {result['peak_mib']:>10.1f} "
                      f"{result['peak_mib'] * 1024 / length:>10.1f}", flush=True)
        goals = in_subprocess(child_options, "goals", str(folder))
    chunked_speedup = goals["torch-parallel"] / goals["ort-chunked"]
    recurrent_speedup = goals["torch-token-loop"] / goals["ort-recurrent"]
    print(f"L={GOAL_SIDE ** 2 + 1}, one process, interleaved runs (ms): "
          + ", ".join(f"{k} {v * 1e3:.1f}" for k, v in goals.items()))
    print(f"  ORT chunked vs eager parallel: {chunked_speedup:.1f}x faster (goal >= 2x) "
          f"{'MET' if chunked_speedup >= 2 else 'NOT MET'}")
    print(f"  ORT recurrent vs token loop:   {recurrent_speedup:.1f}x faster (goal >= 3x) "
          f"{'MET' if recurrent_speedup >= 3 else 'NOT MET'}")
    args.out.mkdir(parents=True, exist_ok=True)
    name = "onnx_cpu" + ("_quick" if args.quick else "") + ("_denormals" if args.keep_denormals else "")
    (args.out / f"{name}.json").write_text(json.dumps({"threads": args.threads,
                                                       "flush_denormals": not args.keep_denormals, "rows": rows,
                                                       "goals_seconds": goals}, indent=1))
    plot(rows, args.out / f"{name}.png", args.threads)
    print(f"wrote {args.out / (name + '.json')} and {args.out / (name + '.png')}")


if __name__ == "__main__":
    main()
