"""Benchmark (CUDA GPU only): the Triton LION kernels vs the PyTorch forms and FlashAttention (issue 4, Performance).

Shapes: B*H = 32 (B = 4, H = 8), d = 64, bf16, LION-S decays (one per token and head: the most general mask),
L = 1024 .. 65536. Columns, forward and forward+backward (the backward of q, k, v and the decays):
    triton-chunked : lion_attention(form="chunked", backend="triton")   (kernels/chunked.py + autograd.py)
    torch-chunked  : lion_attention(form="chunked", backend="torch")
    torch-parallel : lion_attention(form="parallel")                     (O(L^2) memory: skipped when it cannot fit)
    sdpa           : torch.nn.functional.scaled_dot_product_attention    (FlashAttention; softmax, no decay)
and, forward only, the fused scan (form="recurrent", backend="triton") against the chunked kernel.
Times are medians of triton.testing.do_bench (ms). Goals checked at the end: fwd+bwd at L = 4096 >= 2x faster than
torch-chunked and no slower than sdpa; faster than sdpa from L = 16384 on.

    python benchmarks/kernels_gpu.py                       # the full sweep, table + benchmarks/results/kernels_gpu.*
    python benchmarks/kernels_gpu.py --lengths 1024,4096   # a subset
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Callable

import torch

BATCH, HEADS, HEAD_DIM = 4, 8, 64
LENGTHS = (1024, 2048, 4096, 8192, 16384, 32768, 65536)
COLUMNS = ("triton-chunked", "torch-chunked", "torch-parallel", "sdpa")
RESULTS = Path(__file__).parent / "results"


def _require_gpu() -> None:
    if not torch.cuda.is_available():
        raise SystemExit("kernels_gpu.py needs a CUDA GPU (torch.cuda.is_available() is False); nothing was measured")
    if os.environ.get("TRITON_INTERPRET") == "1":
        raise SystemExit("unset TRITON_INTERPRET: the interpreter would time Python, not the GPU kernels")


def _attention(column: str) -> Callable[..., torch.Tensor]:
    from lion_export import lion_attention

    if column == "sdpa":
        return lambda q, k, v, a: torch.nn.functional.scaled_dot_product_attention(q, k, v)
    form, backend = {"triton-chunked": ("chunked", "triton"), "torch-chunked": ("chunked", "torch"),
                     "torch-parallel": ("parallel", "torch"), "triton-scan": ("recurrent", "triton")}[column]
    return lambda q, k, v, a: lion_attention(q, k, v, a, form=form, backend=backend)


def _fits(column: str, length: int) -> bool:
    """The parallel form holds a few fp32 (B, H, L, L) tensors; skip it where they cannot fit in free memory."""
    if column != "torch-parallel":
        return True
    free, _ = torch.cuda.mem_get_info()
    return 4 * BATCH * HEADS * length * length * 4 < 0.8 * free


def _inputs(length: int, grad: bool) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator(device="cuda").manual_seed(0)
    shape = (BATCH, HEADS, length, HEAD_DIM)
    q, k, v = (torch.randn(shape, device="cuda", generator=gen) for _ in range(3))
    q, k = (torch.nn.functional.elu(x) + 1 for x in (q, k))            # LION's positive feature map
    a = torch.nn.functional.logsigmoid(torch.randn(BATCH, HEADS, length, device="cuda", generator=gen) + 3)
    tensors = [x.to(torch.bfloat16) for x in (q, k, v)] + [a]          # decays stay fp32 (log space)
    return tuple(x.detach().requires_grad_(grad) for x in tensors)


def _time(column: str, length: int, backward: bool) -> float | None:
    """Median ms of one call (forward, or forward + backward), None when it does not fit in memory."""
    import triton.testing

    if not _fits(column, length):
        return None
    fn = _attention(column)
    torch.cuda.empty_cache()           # earlier points' tensors are freed by now: give their cached memory back
    q, k, v, a = _inputs(length, grad=backward)
    try:
        if backward:
            dy = torch.randn_like(v)
            return triton.testing.do_bench(lambda: fn(q, k, v, a).backward(dy), grad_to_none=[q, k, v, a],
                                           return_mode="median")
        with torch.no_grad():
            return triton.testing.do_bench(lambda: fn(q, k, v, a), return_mode="median")
    except torch.cuda.OutOfMemoryError:
        return None


def measure(lengths: list[int]) -> dict:
    rows = []
    for length in lengths:
        row = {"L": length}
        for column in COLUMNS:
            row[f"{column} fwd"] = _time(column, length, backward=False)
            row[f"{column} fwd+bwd"] = _time(column, length, backward=True)
        row["triton-scan fwd"] = _time("triton-scan", length, backward=False)
        rows.append(row)
        print(f"L = {length}: done", file=sys.stderr, flush=True)
    return {"gpu": torch.cuda.get_device_name(), "batch": BATCH, "heads": HEADS, "head_dim": HEAD_DIM,
            "dtype": "bf16", "variant": "LION-S", "unit": "ms (median, triton.testing.do_bench)", "rows": rows}


def _print_table(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    keys = [k for k in results["rows"][0] if k != "L"]
    table = Table(title=f"LION attention on {results['gpu']}: B={results['batch']}, H={results['heads']}, "
                        f"d={results['head_dim']}, bf16, ms")
    table.add_column("L", justify="right")
    for key in keys:
        table.add_column(key, justify="right")
    for row in results["rows"]:
        table.add_row(str(row["L"]), *("skip/OOM" if row[k] is None else f"{row[k]:.3f}" for k in keys))
    Console(width=200).print(table)   # wide enough for every column, also when piped to a log


def _goals(results: dict) -> list[str]:
    """The issue's goals, as pass/fail lines (a missing measurement fails its goal)."""
    lines = []
    for row in results["rows"]:
        ours, theirs = row["triton-chunked fwd+bwd"], row["sdpa fwd+bwd"]
        if row["L"] == 4096:
            base = row["torch-chunked fwd+bwd"]
            ok = ours is not None and base is not None and base / ours >= 2
            lines.append(f"L=4096 fwd+bwd >= 2x torch-chunked: {'PASS' if ok else 'FAIL'} "
                         f"({'n/a' if not ok and (ours is None or base is None) else f'{base / ours:.2f}x'})")
            ok = ours is not None and theirs is not None and ours <= theirs
            lines.append(f"L=4096 fwd+bwd no slower than sdpa: {'PASS' if ok else 'FAIL'}")
        if row["L"] >= 16384:
            ok = ours is not None and theirs is not None and ours < theirs
            lines.append(f"L={row['L']} fwd+bwd faster than sdpa: {'PASS' if ok else 'FAIL'}")
    return lines


def _plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lengths = [row["L"] for row in results["rows"]]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, mode in zip(axes, ("fwd", "fwd+bwd")):
        columns = [*COLUMNS, "triton-scan"] if mode == "fwd" else COLUMNS
        for column in columns:
            times = [row[f"{column} {mode}"] for row in results["rows"]]
            points = [(n, t) for n, t in zip(lengths, times) if t is not None]
            if points:
                ax.plot(*zip(*points), marker="o", label=column)
        ax.set(xscale="log", yscale="log", xlabel="sequence length L", title=mode)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("time (ms)")
    axes[0].legend()                  # the forward panel has every column, the scan included
    fig.suptitle(f"LION-S attention, {results['gpu']}, B*H={results['batch'] * results['heads']}, "
                 f"d={results['head_dim']}, bf16")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", default=",".join(map(str, LENGTHS)), help="comma-separated sequence lengths")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for kernels_gpu.json / .png")
    args = parser.parse_args()
    _require_gpu()
    try:
        lengths = [int(n) for n in args.lengths.split(",")]
    except ValueError:
        lengths = []
    if not lengths or min(lengths) < 1:
        raise SystemExit(f"--lengths must be comma-separated positive integers, got {args.lengths!r}")
    results = measure(lengths)
    results["goals"] = _goals(results)
    _print_table(results)
    for line in results["goals"]:
        print(line)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "kernels_gpu.json").write_text(json.dumps(results, indent=2) + "\n")
    _plot(results, args.out / "kernels_gpu.png")
    print(f"wrote {args.out / 'kernels_gpu.json'} and {args.out / 'kernels_gpu.png'}")


if __name__ == "__main__":
    main()
