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

Lengths run in increasing order; the JSON and the plot are rewritten (atomically) after every length, so a run that
is killed, or stopped by --budget-s, still leaves the lengths it measured ("complete": false until the end).

--smoke runs every code path above (all columns, forward and backward, table, goals, JSON, plot) on the CPU under
TRITON_INTERPRET=1 with tiny fp32 shapes (the interpreter has no bf16), timed with time.perf_counter: a check that
the script works before a scarce GPU session runs it. Its numbers time Python, not kernels, and are labelled smoke.

    python benchmarks/kernels_gpu.py                       # the full sweep, table + benchmarks/results/kernels_gpu.*
    python benchmarks/kernels_gpu.py --lengths 1024,4096   # a subset
    python benchmarks/kernels_gpu.py --budget-s 200 --out /tmp/bench   # stop starting new lengths after 200 s
    python benchmarks/kernels_gpu.py --smoke --out /tmp/smoke          # CPU dry run, seconds
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

LENGTHS = (1024, 2048, 4096, 8192, 16384, 32768, 65536)
COLUMNS = ("triton-chunked", "torch-chunked", "torch-parallel", "sdpa")
RESULTS = Path(__file__).parent / "results"

#: one timed call: fn, the tensors whose .grad to reset between calls -> milliseconds
Timer = Callable[[Callable[[], object], list[torch.Tensor]], float]


@dataclass(frozen=True)
class Setup:
    """Where and how the sweep runs: the GPU measurement, or the CPU smoke run of the same code."""
    mode: str                 # "gpu" | "smoke"
    device: str
    dtype: torch.dtype
    dtype_name: str
    batch: int
    heads: int
    head_dim: int
    lengths: tuple[int, ...]
    goal_length: int          # the L of the "2x torch-chunked, no slower than sdpa" goals (4096 on the GPU)
    long_length: int          # the L from which the triton kernel must beat sdpa (16384 on the GPU)
    timer: Timer
    unit: str

    @property
    def device_name(self) -> str:
        return torch.cuda.get_device_name() if self.device == "cuda" else "CPU (smoke: TRITON_INTERPRET=1)"


def _do_bench(fn: Callable[[], object], grads: list[torch.Tensor]) -> float:
    import triton.testing

    return triton.testing.do_bench(fn, grad_to_none=grads, return_mode="median")


def _perf_counter(fn: Callable[[], object], grads: list[torch.Tensor], reps: int = 3) -> float:
    """Median wall-clock ms of `reps` calls after one warm-up call (the smoke run's stand-in for do_bench)."""
    times = []
    for _ in range(reps + 1):
        for tensor in grads:
            tensor.grad = None
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times[1:])


GPU = Setup(mode="gpu", device="cuda", dtype=torch.bfloat16, dtype_name="bf16", batch=4, heads=8, head_dim=64,
            lengths=LENGTHS, goal_length=4096, long_length=16384, timer=_do_bench,
            unit="ms (median, triton.testing.do_bench)")
SMOKE = Setup(mode="smoke", device="cpu", dtype=torch.float32, dtype_name="fp32", batch=1, heads=2, head_dim=16,
              lengths=(32, 48), goal_length=32, long_length=48, timer=_perf_counter,
              unit="ms (SMOKE: median of 3 time.perf_counter calls under TRITON_INTERPRET=1 on the CPU; not a "
                   "measurement of the kernels)")


def _require_gpu() -> None:
    if not torch.cuda.is_available():
        raise SystemExit("kernels_gpu.py needs a CUDA GPU (torch.cuda.is_available() is False); nothing was measured"
                         " (--smoke runs the script's code paths on the CPU)")
    if os.environ.get("TRITON_INTERPRET") == "1":
        raise SystemExit("unset TRITON_INTERPRET: the interpreter would time Python, not the GPU kernels")


def _attention(column: str) -> Callable[..., torch.Tensor]:
    from lion_export import lion_attention

    if column == "sdpa":
        return lambda q, k, v, a: torch.nn.functional.scaled_dot_product_attention(q, k, v)
    form, backend = {"triton-chunked": ("chunked", "triton"), "torch-chunked": ("chunked", "torch"),
                     "torch-parallel": ("parallel", "torch"), "triton-scan": ("recurrent", "triton")}[column]
    return lambda q, k, v, a: lion_attention(q, k, v, a, form=form, backend=backend)


def _fits(setup: Setup, column: str, length: int) -> bool:
    """The parallel form holds a few fp32 (B, H, L, L) tensors; skip it where they cannot fit in free GPU memory."""
    if column != "torch-parallel" or setup.device != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info()
    return 4 * setup.batch * setup.heads * length * length * 4 < 0.8 * free


def _inputs(setup: Setup, length: int, grad: bool) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator(device=setup.device).manual_seed(0)
    shape = (setup.batch, setup.heads, length, setup.head_dim)
    q, k, v = (torch.randn(shape, device=setup.device, generator=gen) for _ in range(3))
    q, k = (torch.nn.functional.elu(x) + 1 for x in (q, k))            # LION's positive feature map
    a = torch.nn.functional.logsigmoid(torch.randn(shape[:3], device=setup.device, generator=gen) + 3)
    tensors = [x.to(setup.dtype) for x in (q, k, v)] + [a]             # decays stay fp32 (log space)
    return tuple(x.detach().requires_grad_(grad) for x in tensors)


def _time(setup: Setup, column: str, length: int, backward: bool) -> float | str | None:
    """Median ms of one call (forward, or forward + backward); None when it cannot fit in memory, and the error as
    text when the call fails, so one failing column never costs the other columns of a scarce GPU session."""
    try:
        if not _fits(setup, column, length):
            return None
        fn = _attention(column)
        if setup.device == "cuda":
            torch.cuda.empty_cache()   # earlier points' tensors are freed by now: give their cached memory back
        q, k, v, a = _inputs(setup, length, grad=backward)
        if backward:
            dy = torch.randn_like(v)
            return setup.timer(lambda: fn(q, k, v, a).backward(dy), [q, k, v, a])
        with torch.no_grad():
            return setup.timer(lambda: fn(q, k, v, a), [])
    except torch.cuda.OutOfMemoryError:
        return None
    except Exception as error:  # noqa: BLE001 -- recorded in the results and printed, never swallowed silently
        traceback.print_exc()          # the whole story to stderr (the GPU session's log); the gist to the JSON
        return f"{type(error).__name__}: {' '.join(str(error).split())[:500]}"


def measure_length(setup: Setup, length: int) -> tuple[dict, dict]:
    """One row of the table (every column at one L; failed points are None) and the errors of its failed points."""
    row: dict = {"L": length}
    errors = {}
    points = [(column, backward) for column in COLUMNS for backward in (False, True)] + [("triton-scan", False)]
    for column, backward in points:
        key = f"{column} {'fwd+bwd' if backward else 'fwd'}"
        value = _time(setup, column, length, backward)
        if isinstance(value, str):
            errors[f"L={length} {key}"] = value
            print(f"L = {length} {key} failed: {value}", file=sys.stderr, flush=True)
            value = None
        row[key] = value
    return row, errors


def _header(setup: Setup) -> dict:
    return {"mode": setup.mode, "smoke": setup.mode == "smoke", "gpu": setup.device_name, "batch": setup.batch,
            "heads": setup.heads, "head_dim": setup.head_dim, "dtype": setup.dtype_name, "variant": "LION-S",
            "unit": setup.unit}


def _title(results: dict) -> str:
    smoke = "SMOKE RUN (not a measurement), " if results["smoke"] else ""
    return (f"{smoke}LION-S attention on {results['gpu']}: B={results['batch']}, H={results['heads']}, "
            f"d={results['head_dim']}, {results['dtype']}, ms")


def _print_table(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    keys = [k for k in results["rows"][0] if k != "L"]
    table = Table(title=_title(results))
    table.add_column("L", justify="right")
    for key in keys:
        table.add_column(key, justify="right")
    for row in results["rows"]:
        table.add_row(str(row["L"]), *(("error" if f"L={row['L']} {k}" in results["errors"] else "skip/OOM")
                                       if row[k] is None else f"{row[k]:.3f}" for k in keys))
    Console(width=200).print(table)   # wide enough for every column, also when piped to a log


def _goals(results: dict, setup: Setup) -> list[str]:
    """The issue's goals, as pass/fail lines (a missing measurement fails its goal)."""
    lines = []
    for row in results["rows"]:
        ours, theirs = row["triton-chunked fwd+bwd"], row["sdpa fwd+bwd"]
        if row["L"] == setup.goal_length:
            base = row["torch-chunked fwd+bwd"]
            ok = ours is not None and base is not None and base / ours >= 2
            lines.append(f"L={row['L']} fwd+bwd >= 2x torch-chunked: {'PASS' if ok else 'FAIL'} "
                         f"({'n/a' if ours is None or base is None else f'{base / ours:.2f}x'})")
            ok = ours is not None and theirs is not None and ours <= theirs
            lines.append(f"L={row['L']} fwd+bwd no slower than sdpa: {'PASS' if ok else 'FAIL'}")
        if row["L"] >= setup.long_length:
            ok = ours is not None and theirs is not None and ours < theirs
            lines.append(f"L={row['L']} fwd+bwd faster than sdpa: {'PASS' if ok else 'FAIL'}")
    if setup.mode == "smoke":
        lines = [f"[smoke, meaningless] {line}" for line in lines]
    return lines


def _plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lion_export.atomic import atomic_output

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
    smoke = "SMOKE RUN (not a measurement): " if results["smoke"] else ""
    fig.suptitle(f"{smoke}LION-S attention, {results['gpu']}, B*H={results['batch'] * results['heads']}, "
                 f"d={results['head_dim']}, {results['dtype']}")
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")   # the temp name ends in .tmp: say the format
    plt.close(fig)


def _write(results: dict, out: Path) -> None:
    """JSON and plot, each replaced atomically, so a run killed at any point leaves the last complete pair."""
    from lion_export.atomic import atomic_output

    with atomic_output(out / "kernels_gpu.json") as tmp:
        tmp.write_text(json.dumps(results, indent=2) + "\n")
    _plot(results, out / "kernels_gpu.png")


def run(setup: Setup, lengths: list[int], out: Path, budget_s: float | None) -> dict:
    """The sweep in increasing L, results written after every length; no new length starts past the budget (the
    first one always runs: a run that measures nothing is of no use)."""
    out.mkdir(parents=True, exist_ok=True)
    results = {**_header(setup), "complete": False, "budget_s": budget_s, "skipped_lengths": [], "rows": [],
               "errors": {}}
    start = time.perf_counter()
    todo = sorted(set(lengths))
    for index, length in enumerate(todo):
        elapsed = time.perf_counter() - start
        if budget_s is not None and index > 0 and elapsed > budget_s:
            results["skipped_lengths"] = todo[index:]
            print(f"budget of {budget_s:g} s spent after {elapsed:.0f} s: skipped L = {todo[index:]}",
                  file=sys.stderr, flush=True)
            break
        row, errors = measure_length(setup, length)
        results["rows"].append(row)
        results["errors"].update(errors)
        results["goals"] = _goals(results, setup)
        _write(results, out)
        print(f"L = {length}: done ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    results["complete"] = not results["skipped_lengths"]
    _write(results, out)
    return results


def _lengths(text: str | None, default: tuple[int, ...]) -> list[int]:
    if text is None:
        return list(default)
    try:
        lengths = [int(n) for n in text.split(",")]
    except ValueError:
        lengths = []
    if not lengths or min(lengths) < 1:
        raise SystemExit(f"--lengths must be comma-separated positive integers, got {text!r}")
    return lengths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", default=None,
                        help=f"comma-separated sequence lengths (default {','.join(map(str, LENGTHS))}; "
                             f"--smoke: {','.join(map(str, SMOKE.lengths))})")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for kernels_gpu.json / .png")
    parser.add_argument("--budget-s", type=float, default=None, metavar="SECONDS",
                        help="start no new length after this many seconds (the first always runs; results so far are "
                             "kept)")
    parser.add_argument("--smoke", action="store_true",
                        help="CPU dry run of every code path under TRITON_INTERPRET=1, tiny fp32 shapes")
    args = parser.parse_args()
    if args.budget_s is not None and args.budget_s < 0:
        raise SystemExit(f"--budget-s must be >= 0, got {args.budget_s}")
    if args.smoke:
        if args.out.resolve() == RESULTS.resolve():
            raise SystemExit("--smoke needs --out DIR: smoke numbers must never replace the recorded results")
        os.environ["TRITON_INTERPRET"] = "1"     # before the kernels (and triton.jit) are first imported
        setup = SMOKE
    else:
        _require_gpu()
        setup = GPU
    lengths = _lengths(args.lengths, setup.lengths)
    results = run(setup, lengths, args.out, args.budget_s)
    _print_table(results)
    for line in results["goals"]:
        print(line)
    errors = list(results["errors"].items())
    for point, error in errors[:8]:             # a few: a broken kernel fails every length alike
        print(f"error at {point}: {error[:300]}")
    if len(errors) > 8:
        print(f"... and {len(errors) - 8} more errors (all in kernels_gpu.json, tracebacks on stderr)")
    if results["skipped_lengths"]:
        print(f"skipped (budget): L = {results['skipped_lengths']}")
    print(f"wrote {args.out / 'kernels_gpu.json'} and {args.out / 'kernels_gpu.png'}")
    if errors:
        sys.exit(1)                             # everything else was measured and written; the run still failed


if __name__ == "__main__":
    main()
