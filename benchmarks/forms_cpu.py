"""Benchmark: latency and peak memory of the three LION forms on the CPU (issue "LION core", Performance).

One LION-S attention layer at vit-tiny width (3 heads, head dim 64), batch 1, L = 256 .. 16384. Every
(form, L) point runs in a fresh subprocess so one measurement's allocations cannot inflate another's peak:
peak memory is the child's peak RSS minus its RSS just before the timed call (inputs already allocated).
Single-threaded (the like-for-like comparison, and far less noisy on a shared 2-core machine), with denormal
floats flushed to zero: LION-S decay products reach the denormal range, where x86 CPUs slow down 10-50x, which
would otherwise make this a benchmark of denormal handling (benchmarks/onnx_cpu.py does the same).
Prints a table, writes it as JSON, and saves a plot of latency and peak memory against L.

    python benchmarks/forms_cpu.py                 # full sweep (a few minutes on 2 cores)
    python benchmarks/forms_cpu.py --quick         # L = 256 .. 2048
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from plotting import plot_latency_and_memory

HEADS, HEAD_DIM, CHUNK = 3, 64, 64
PARALLEL_MAX_L = 8192          # the L x L form needs ~10 GB beyond this on a 24 GB machine

CHILD = r"""
import json, resource, sys, time, torch
import torch.nn.functional as F
from lion_export import lion_attention
form, length, heads, dim, chunk, repeats = sys.argv[1], *map(int, sys.argv[2:7])
torch.set_num_threads(1)
torch.set_flush_denormal(True)
gen = torch.Generator().manual_seed(0)
q = torch.rand(1, heads, length, dim, generator=gen)
k = torch.rand(1, heads, length, dim, generator=gen)
v = torch.randn(1, heads, length, dim, generator=gen)
a = F.logsigmoid(-torch.randn(1, heads, length, generator=gen))
def rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() // 1024
with torch.inference_mode():
    base = rss_kib()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        lion_attention(q, k, v, a, form=form, chunk_size=chunk)
        times.append(time.perf_counter() - start)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": min(times), "peak_mib": max(peak - base, 0) / 1024}))
"""


def measure(form: str, length: int, repeats: int) -> dict:
    """Run one (form, L) point in a fresh interpreter and return its best time and extra peak memory."""
    out = subprocess.run([sys.executable, "-c", CHILD, form, str(length), str(HEADS), str(HEAD_DIM), str(CHUNK),
                          str(repeats)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def plot(rows: list[dict], path: Path) -> None:
    plot_latency_and_memory(rows, "form", ("parallel", "chunked", "recurrent"), "peak memory above inputs (MiB)",
                            f"LION-S attention, 1 layer, {HEADS} heads x {HEAD_DIM}, CPU, chunk {CHUNK}", path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="L = 256 .. 2048 only")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    lengths = [256, 512, 1024, 2048] if args.quick else [256, 512, 1024, 2048, 4096, 8192, 16384]
    rows = []
    print(f"{'L':>6} {'form':>10} {'ms':>10} {'peak MiB':>10}")
    for length in lengths:
        for form in ("parallel", "chunked", "recurrent"):
            if form == "parallel" and length > PARALLEL_MAX_L:
                continue
            result = measure(form, length, repeats=1 if form == "recurrent" or length >= 4096 else 3)
            rows.append({"form": form, "L": length, **result})
            print(f"{length:>6} {form:>10} {result['seconds'] * 1e3:>10.1f} {result['peak_mib']:>10.1f}", flush=True)
    by = {(r["form"], r["L"]): r for r in rows}
    for length in (4096, 8192):
        if ("parallel", length) in by and ("chunked", length) in by:
            p, c = by[("parallel", length)], by[("chunked", length)]
            print(f"L={length}: chunked is {p['seconds'] / c['seconds']:.1f}x faster than parallel and uses "
                  f"{c['peak_mib'] / max(p['peak_mib'], 1e-9):.3f}x its peak memory")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "forms_cpu.json").write_text(json.dumps(rows, indent=1))
    plot(rows, args.out / "forms_cpu.png")
    print(f"wrote {args.out / 'forms_cpu.json'} and {args.out / 'forms_cpu.png'}")


if __name__ == "__main__":
    main()
