"""Benchmark: what the natural order (LION-S♮, two walks) costs over plain LION-S, per form, on the CPU.

One vision LION-S mixer at vit-tiny width (dim 192, 3 heads of 64), batch 1, on the 14 x 14 (197 tokens, the
paper's 224 px) and 28 x 28 (785 tokens) patch grids, in each form. The natural mixer runs two LION passes (each
with v widened by a column of ones for its row sums) plus the token gathers, so the expected ratio is a little over
2x the attention part; the qkv / proj Linears are shared. Both mixers are timed alternately in one process
(single-threaded, denormals flushed, as benchmarks/forms_cpu.py), medians over the repeats, and the ratio is of
those medians from the same run.

    python benchmarks/natural_cpu.py            # writes benchmarks/results/natural_cpu.json
    python benchmarks/natural_cpu.py --quick    # 197 tokens only, fewer repeats
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from lion_export import LionAttention  # noqa: E402

DIM, HEADS, CHUNK = 192, 3, 64


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="197 tokens only, fewer repeats")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    sides = [14] if args.quick else [14, 28]
    rows = []
    print(f"{'tokens':>6} {'form':>10} {'plain ms':>10} {'natural ms':>11} {'ratio':>6}")
    for side in sides:
        tokens = side * side + 1
        x = torch.randn(1, tokens, DIM)
        for form in ("parallel", "chunked", "recurrent"):
            plain = LionAttention(DIM, HEADS, "selective", form=form, chunk_size=CHUNK).eval()
            natural = LionAttention(DIM, HEADS, "selective", form=form, chunk_size=CHUNK, natural=True).eval()
            repeats = (3 if form == "recurrent" else 7) if not args.quick else 3
            with torch.inference_mode():
                plain(x), natural(x, grid=(side, side))                      # warm-up
                times = {"plain": [], "natural": []}
                for _ in range(repeats):                                     # alternate, so drift hits both
                    times["plain"].append(_seconds(lambda: plain(x)))
                    times["natural"].append(_seconds(lambda: natural(x, grid=(side, side))))
            p, n = statistics.median(times["plain"]), statistics.median(times["natural"])
            rows.append({"tokens": tokens, "form": form, "plain_ms": p * 1e3, "natural_ms": n * 1e3,
                         "ratio": n / p, "repeats": repeats})
            print(f"{tokens:>6} {form:>10} {p * 1e3:>10.2f} {n * 1e3:>11.2f} {n / p:>6.2f}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / "natural_cpu.json"
    out.write_text(json.dumps({"dim": DIM, "heads": HEADS, "chunk": CHUNK, "threads": 1, "statistic": "median",
                               "rows": rows}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
