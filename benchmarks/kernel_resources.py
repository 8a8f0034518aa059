"""What each Triton kernel needs on each GPU target, measured from its compiled code (no GPU needed).

For every registered kernel, the training-only ones included, compiled with `compile_kernels(..., training=True)` for
each target at head dims 64 and 128, bf16 and fp32, chunk 64 (the kernels' own choice of chunk and tiles applies):
shared memory per block (Triton's metadata: what a launch must provide), registers per thread and local memory
(spills) per thread (cuobjdump --dump-resource-usage of the cubin). Shared memory decides whether a kernel launches
at all on a target (sm_86 / sm_89 offer 99 KiB per block); registers and spills are the first hints of how it will
run. The compiler never sees a GPU here, so these are the figures a GPU session would read, not timings.

    python benchmarks/kernel_resources.py        # table + benchmarks/results/kernel_resources.json (a few minutes)
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
DTYPES = ("bf16", "fp32")
HEAD_DIMS = (64, 128)
_USAGE = re.compile(r"REG:(\d+).*?LOCAL:(\d+)")


def _cubin_usage(cubin: bytes) -> tuple[int, int]:
    """(registers, local bytes) per thread, read with the cuobjdump Triton ships."""
    import triton

    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.NamedTemporaryFile(suffix=".cubin") as file:
        file.write(cubin)
        file.flush()
        text = subprocess.run([str(tool), "--dump-resource-usage", file.name], capture_output=True, text=True,
                              check=True).stdout
    found = _USAGE.search(text)
    if not found:
        raise RuntimeError(f"cuobjdump printed no resource usage: {text.strip()[:200]}")
    return int(found.group(1)), int(found.group(2))


def _measure(job: tuple[str, str, int]) -> list[dict]:
    from lion_export.kernels.aot.specs import KernelConfig
    from lion_export.kernels.aot.compiler import KernelCompileError, compile_kernels

    target, dtype, head_dim = job
    config = KernelConfig(dtype=dtype, head_dim=head_dim, chunk_size=64)
    try:
        kernels = compile_kernels(target, config, training=True)
    except KernelCompileError as err:
        return [{"target": target, "dtype": dtype, "head_dim": head_dim, "error": str(err)}]
    rows = []
    for kernel in kernels:
        registers, local = _cubin_usage(kernel.cubin)
        rows.append({"target": target, "dtype": dtype, "head_dim": head_dim, "kernel": kernel.spec.name,
                     "chunk": kernel.spec.constexprs.get("CHUNK"), "num_warps": kernel.spec.num_warps,
                     "shared_kib": round(kernel.shared_mem / 1024, 1),
                     "limit_kib": kernel.target.max_shared_mem // 1024, "registers": registers, "local_bytes": local})
    return rows


def main() -> None:
    from lion_export.kernels.aot.cuda_targets import TARGETS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default=",".join(TARGETS), help="comma-separated, default: all")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    os.environ.pop("TRITON_INTERPRET", None)        # compile in-process: real JIT functions
    jobs = [(t, d, h) for t in args.targets.split(",") for d in DTYPES for h in HEAD_DIMS]
    rows: list[dict] = []
    with ProcessPoolExecutor(args.jobs) as pool:
        for done, result in enumerate(pool.map(_measure, jobs), 1):
            rows.extend(result)
            print(f"[{done}/{len(jobs)}] {'/'.join(map(str, jobs[done - 1]))}", file=sys.stderr, flush=True)
    print("| target | dtype | d | kernel | chunk | warps | shared KiB (limit) | regs | spill B |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        if "error" in row:
            print(f"| {row['target']} | {row['dtype']} | {row['head_dim']} | ERROR: {row['error']} |||||")
            continue
        print(f"| {row['target']} | {row['dtype']} | {row['head_dim']} | {row['kernel']} | {row['chunk'] or '-'} | "
              f"{row['num_warps']} | {row['shared_kib']} ({row['limit_kib']}) | {row['registers']} | "
              f"{row['local_bytes']} |")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "kernel_resources.json").write_text(json.dumps(rows, indent=1) + "\n")
    failed = [row for row in rows if "error" in row]
    if failed:
        sys.exit(f"{len(failed)} configuration(s) did not compile or fit; see the table")


if __name__ == "__main__":
    main()
