"""Benchmark: LION at long sequence lengths on the CPU against softmax attention (issue 13).

Mixer only (B = 1, H = 3, head dim 64, fp32, chunk 64): torch SDPA (softmax attention), LION-S chunked, LION-LIT
chunked and the eager LION-S recurrent form, L = 1024 .. 16384 (65536 with --long). Per length one fresh child
process runs every implementation interleaved, --repeats rounds, and reports medians, so the ratios come from one
machine state; the same child times a large sgemm, the yardstick for the chunked form's FLOP rate. The recurrent
form also runs on 2 threads in that child (threads switched between rounds). Peak memory: one fresh child per
(implementation, L), the kernel's peak-RSS counter reset before one call (benchmarks/onnx_cpu.py's helpers), minus
the RSS with the inputs in place, compared with the size of the output tensor.
--ort adds the exported graphs in onnxruntime: a one-block LION-S ViT (benchmarks/onnx_cpu.py's model) exported in
the chunked form against the same block with softmax attention (SDPA on the same qkv / proj weights) and with no
token mixing at all (each token's v: the block's linear layers alone, the floor under any mixer, which bounds the
ratio any mixer can reach), L = 1025 and 16385, interleaved in one child per length, medians.
Denormals are flushed to zero everywhere (see benchmarks/onnx_cpu.py for why). Single-threaded unless stated.

    python benchmarks/long_sequence_cpu.py                  # L = 1024, 4096, 16384 (a few minutes)
    python benchmarks/long_sequence_cpu.py --long --ort     # + L = 65536 and the ORT comparison (~10 min)
    PYTHONPATH=<another checkout> python benchmarks/long_sequence_cpu.py --tag before   # the same, other code
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lion_export.bench.memory import reset_peak_rss, status_kib
from plotting import plot_latency_and_memory

HEADS, HEAD_DIM, CHUNK = 3, 64, 64
LENGTHS, LONG_LENGTHS = [1024, 4096, 16384], [65536]
ORT_SIDES = [32, 128]                       # L = side^2 + 1 = 1025, 16385
ORT_TWINS = ("softmax", "no-mixing")
IMPLEMENTATIONS = ("sdpa", "lion-s chunked", "lion-lit chunked", "lion-s recurrent")
SLOW_SINGLE_RUN = {"sdpa": 16384, "lion-s recurrent": 16384}   # above this L: one timed run (SDPA: minutes)


def make_inputs(length: int):
    import torch
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(0)
    q = torch.rand(1, HEADS, length, HEAD_DIM, generator=gen)
    k = torch.rand(1, HEADS, length, HEAD_DIM, generator=gen)
    v = torch.randn(1, HEADS, length, HEAD_DIM, generator=gen)
    return q, k, v, F.logsigmoid(-torch.randn(1, HEADS, length, generator=gen))


def make_call(implementation: str, length: int):
    """A zero-argument callable running one mixer call of `implementation` on seeded inputs of length L."""
    import torch
    import torch.nn.functional as F

    from lion_export import lion_attention

    q, k, v, a = make_inputs(length)
    if implementation == "sdpa":
        return lambda: F.scaled_dot_product_attention(q, k, v)
    if implementation == "lion-lit chunked":
        return lambda: lion_attention(q, k, v, None, form="chunked", chunk_size=CHUNK)
    form = implementation.split()[-1]
    return lambda: lion_attention(q, k, v, a, form=form, chunk_size=CHUNK)


def sgemm_seconds(size: int = 1024) -> float:
    import torch

    x, y = torch.randn(size, size), torch.randn(size, size)
    x @ y
    start = time.perf_counter()
    x @ y
    return time.perf_counter() - start


def chunked_flops(length: int) -> float:
    """The chunked LION-S form's GEMM work (multiply-adds x 2), as lion_export/forms/chunked.py does it:
    intra-chunk Q K^T and scores [V, 1], key summaries K^T [V, 1] and query read-outs, both directions."""
    padded = -(-length // CHUNK) * CHUNK
    width = HEAD_DIM + 1
    per_head = 2 * padded * CHUNK * (HEAD_DIM + width) + 2 * 2 * 2 * padded * HEAD_DIM * width
    return HEADS * per_head


def child_times(length: int, repeats: int) -> dict:
    """Fresh interpreter: every implementation at one L, interleaved rounds; medians in seconds."""
    import torch

    torch.set_flush_denormal(True)
    calls = {name: make_call(name, length) for name in IMPLEMENTATIONS}
    runs = [(name, 1) for name in IMPLEMENTATIONS]
    if length <= 4096:
        runs.append(("lion-s recurrent", 2))
    times: dict[str, list[float]] = {f"{name}@{threads}": [] for name, threads in runs}
    times["sgemm"] = []
    with torch.inference_mode():
        for round_ in range(repeats):
            for name, threads in runs:
                if round_ > 0 and length > SLOW_SINGLE_RUN.get(name, math.inf):
                    continue
                torch.set_num_threads(threads)
                if round_ == 0 and length <= SLOW_SINGLE_RUN.get(name, math.inf):
                    calls[name]()                                          # warm-up
                start = time.perf_counter()
                calls[name]()
                times[f"{name}@{threads}"].append(time.perf_counter() - start)
            torch.set_num_threads(1)
            times["sgemm"].append(sgemm_seconds())
    return {name: statistics.median(t) for name, t in times.items()}


def child_memory(implementation: str, length: int) -> dict:
    """Fresh interpreter: extra peak RSS of one call (inputs already allocated) and the output's size, MiB."""
    import torch

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    call = make_call(implementation, length)
    with torch.inference_mode():
        reset = reset_peak_rss()
        base = status_kib("VmRSS")
        out = call()
        peak = status_kib("VmHWM") if reset else None
    return {"peak_mib": None if peak is None else max(peak - base, 0) / 1024,
            "output_mib": out.numel() * out.element_size() / 2 ** 20}


def export_ort_models(folder: Path) -> None:
    """Per ORT length: the LION-S block in the chunked form (export_onnx), its softmax twin and its no-mixing twin
    (torch.onnx)."""
    import torch

    from lion_export.export import export_onnx
    from onnx_cpu import build_model

    for side in ORT_SIDES:
        model = build_model(side)
        export_onnx(model, folder / f"chunked_{side}.onnx", form="chunked", chunk_size=CHUNK, batch=2)
        image = torch.zeros(1, 1, side, side)
        for kind in ORT_TWINS:
            torch.onnx.export(mixer_twin(build_model(side), kind), (image,), str(folder / f"{kind}_{side}.onnx"),
                              input_names=["images"], dynamo=True, verbose=False)
        print(f"exported L={side * side + 1} (chunked, {', '.join(ORT_TWINS)})", flush=True)


def mixer_twin(model, kind: str):
    """The same model with each LION mixer replaced over the same qkv and proj weights: "softmax" attention, or
    "no-mixing" (each token's own v: the block's cost without any token mixing, the floor under every mixer)."""
    import torch
    import torch.nn.functional as F

    class TwinMixer(torch.nn.Module):
        def __init__(self, lion) -> None:
            super().__init__()
            self.qkv, self.proj, self.heads = lion.qkv, lion.proj, lion.num_heads

        def forward(self, x: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
            del grid    # neither twin has a token order to walk
            batch, length, dim = x.shape
            q, k, v = self.qkv(x).reshape(batch, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
            out = F.scaled_dot_product_attention(q, k, v) if kind == "softmax" else v
            return self.proj(out.transpose(1, 2).reshape(batch, length, dim))

    for block in model.blocks:
        block.attn = TwinMixer(block.attn)
    return model.eval()


def child_ort(side: int, folder: Path, repeats: int) -> dict:
    """Fresh interpreter: the chunked block and its twins in ORT sessions at one L, interleaved; medians in seconds."""
    import numpy as np
    import onnxruntime as ort

    image = np.random.default_rng(0).standard_normal((1, 1, side, side)).astype(np.float32)
    runs = {}
    for kind in ("chunked", *ORT_TWINS):
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.add_session_config_entry("session.set_denormal_as_zero", "1")
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(folder / f"{kind}_{side}.onnx"), options,
                                       providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        runs[kind] = (lambda s=session, n=name: s.run(None, {n: image}))
        runs[kind]()
    times: dict[str, list[float]] = {kind: [] for kind in runs}
    for _ in range(repeats):
        for kind, run in runs.items():
            start = time.perf_counter()
            run()
            times[kind].append(time.perf_counter() - start)
    return {kind: statistics.median(t) for kind, t in times.items()}


def in_child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def goal_lines(times: dict[int, dict], ort: dict[int, dict]) -> list[str]:
    """The issue's goals, each with its measured ratio and MET / NOT MET."""
    lines = []

    def check(text: str, value: float, ok: bool) -> None:
        lines.append(f"{text}: {value:.2f} {'MET' if ok else 'NOT MET'}")

    for length, goal in ((1024, 1.0), (16384, 30.0), (65536, 60.0)):
        if length in times:
            t = times[length]
            check(f"L={length} SDPA / LION-S chunked (goal >= {goal:g}x)", t["sdpa@1"] / t["lion-s chunked@1"],
                  t["sdpa@1"] / t["lion-s chunked@1"] >= goal)
    if 16384 in times and 65536 in times:
        exponent = math.log(times[65536]["lion-s chunked@1"] / times[16384]["lion-s chunked@1"]) / math.log(4)
        check("LION-S chunked time exponent 16k -> 65k (goal <= 1.1)", exponent, exponent <= 1.1)
    if 16384 in times:
        t = times[16384]
        share = chunked_flops(16384) / t["lion-s chunked@1"] / (2 * 1024 ** 3 / t["sgemm"])
        check("L=16384 LION-S chunked GEMM FLOP rate / sgemm rate (goal >= 0.30)", share, share >= 0.3)
    for length in (1024, 4096):
        if length in times:
            t = times[length]
            ratio = t["lion-s recurrent@2"] / t["lion-s recurrent@1"]
            check(f"L={length} recurrent 2 threads / 1 thread time (goal <= 1)", ratio, ratio <= 1.0)
    for side, goal in zip(ORT_SIDES, (1.0, 50.0)):
        if side in ort:
            ratio = ort[side]["softmax"] / ort[side]["chunked"]
            check(f"ORT L={side * side + 1} softmax block / chunked block (goal >= {goal:g}x)", ratio, ratio >= goal)
            lines.append(f"  (bound for any mixer: softmax block / no-mixing block = "
                         f"{ort[side]['softmax'] / ort[side]['no-mixing']:.2f}x)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="*", default=LENGTHS, help="mixer lengths (default %(default)s)")
    parser.add_argument("--long", action="store_true", help="add L = 65536 (SDPA alone takes minutes)")
    parser.add_argument("--ort", action="store_true", help="add the onnxruntime block comparison")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds per length (default 5)")
    parser.add_argument("--tag", default="", help="suffix for the result files (e.g. 'before')")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory children")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "times":
            result = child_times(int(rest[0]), int(rest[1]))
        elif kind == "memory":
            result = child_memory(rest[0], int(rest[1]))
        else:
            result = child_ort(int(rest[0]), Path(rest[1]), int(rest[2]))
        print(json.dumps(result))
        return

    lengths = args.lengths + (LONG_LENGTHS if args.long else [])
    started = time.perf_counter()
    times: dict[int, dict] = {}
    rows = []
    print(f"{'L':>6} {'implementation':>18} {'median ms':>10} {'peak MiB':>9} {'x output':>8}", flush=True)
    for length in lengths:
        times[length] = in_child("times", str(length), str(args.repeats))
        for name in IMPLEMENTATIONS:
            memory = ({"peak_mib": None, "output_mib": None} if args.no_memory
                      else in_child("memory", name, str(length)))
            row = {"implementation": name, "L": length, "seconds": times[length][f"{name}@1"], **memory}
            rows.append(row)
            ratio = "" if not memory["peak_mib"] else f"{memory['peak_mib'] / memory['output_mib']:8.2f}"
            peak = "" if memory["peak_mib"] is None else f"{memory['peak_mib']:9.1f}"
            print(f"{length:>6} {name:>18} {row['seconds'] * 1e3:>10.1f} {peak:>9} {ratio:>8}", flush=True)
        print(f"   (L={length} done, {time.perf_counter() - started:.0f} s elapsed)", flush=True)
    ort: dict[int, dict] = {}
    if args.ort:
        with tempfile.TemporaryDirectory(prefix="lion-long-bench-") as tmp:
            export_ort_models(Path(tmp))
            for side in ORT_SIDES:
                ort[side] = in_child("ort", str(side), tmp, str(args.repeats if side < 100 else 3))
                print(f"ORT L={side * side + 1}: chunked {ort[side]['chunked'] * 1e3:.1f} ms, "
                      f"softmax {ort[side]['softmax'] * 1e3:.1f} ms, no mixing {ort[side]['no-mixing'] * 1e3:.1f} ms",
                      flush=True)
    goals = goal_lines(times, ort)
    print("\n".join(goals))
    args.out.mkdir(parents=True, exist_ok=True)
    name = "long_sequence_cpu" + (f"_{args.tag}" if args.tag else "")
    (args.out / f"{name}.json").write_text(json.dumps({
        "setup": {"batch": 1, "heads": HEADS, "head_dim": HEAD_DIM, "chunk": CHUNK, "dtype": "float32",
                  "threads": 1, "repeats": args.repeats, "statistic": "median"},
        "rows": rows, "medians_seconds": {str(k): v for k, v in times.items()},
        "sgemm_gflops": {str(k): 2 * 1024 ** 3 / v["sgemm"] / 1e9 for k, v in times.items()},
        "ort_medians_seconds": {str(s * s + 1): v for s, v in ort.items()}, "goals": goals}, indent=1))
    if not args.no_memory:
        plot_latency_and_memory(rows, "implementation", IMPLEMENTATIONS, "peak memory above inputs (MiB)",
                                f"mixer only: B=1, {HEADS} heads x {HEAD_DIM}, fp32, 1 thread, chunk {CHUNK}",
                                args.out / f"{name}.png")
    print(f"wrote {args.out / (name + '.json')}" + ("" if args.no_memory else f" and {name}.png"))


if __name__ == "__main__":
    main()
