"""Benchmark: how long an export (+ its parity verification) takes at depth 1 and depth 12 (issue 12, item 3).

Model: vit-tiny (dim 192, 3 heads, 224 px, 197 tokens), LION-LIT, depth 1 and 12, chunked and recurrent. Every run
is a fresh Python process (`--child`), so each pays the imports and torch.onnx's first-use costs as a user's
command does; runs are interleaved (1, 12, 1, 12, ...) so both depths see the same machine state, and the medians
over `--repeats` are reported. Per run: the wall time of the whole process, the import time, each export phase as
export_onnx reports it (its `progress` callback), and verify_onnx's time (three batch sizes against the float64
eager reference, as `lion-export` runs it after every export).
Goals (issue 12): a 12-block chunked export with verification within 3x the 1-block one, and within 20 s on a
2-core machine. The machine is shared: quote the ratios, which are measured in one run.

    python benchmarks/export_time.py                         # 3 repeats of each (depth, mode): a few minutes
    python benchmarks/export_time.py --source /old/checkout --out /tmp/before --repeats 1   # another tree's code
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEPTHS = (1, 12)
MODES = ("chunked", "recurrent")


def child(depth: int, mode: str) -> dict:
    """One export + verification in this (fresh) process; returns its timings."""
    started = time.perf_counter()
    import torch

    from lion_export import create_model
    from lion_export.export import export_onnx
    from lion_export.verify import verify_onnx
    imported = time.perf_counter()

    torch.manual_seed(0)
    model = create_model("vit-tiny", depth=depth).eval()
    phases: list[list] = []
    clock = [time.perf_counter()]

    def progress(step: str) -> None:
        now = time.perf_counter()
        if phases:
            phases[-1][1] = now - clock[0]
        phases.append([step, 0.0])
        clock[0] = now

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        export_start = time.perf_counter()
        export_onnx(model, path, form=mode, progress=progress)
        exported = time.perf_counter()
        phases[-1][1] = exported - clock[0]
        report = verify_onnx(model, path, progress=False)
        verified = time.perf_counter()
        size = path.stat().st_size
    return {"depth": depth, "mode": mode, "import_s": imported - started, "export_s": exported - export_start,
            "verify_s": verified - exported, "export_and_verify_s": verified - export_start,
            "phases": phases, "passed": report.passed, "file_bytes": size}


def run_child(depth: int, mode: str, source: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(source)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--child", str(depth), mode], env=env, cwd=source,
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"depth {depth} {mode} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_wall_s"] = wall
    return result


def _median(rows: list[dict], key: str) -> float:
    return statistics.median(row[key] for row in rows)


def summarize(rows: list[dict]) -> dict:
    summary = {}
    for mode in MODES:
        by_depth = {d: [r for r in rows if r["mode"] == mode and r["depth"] == d] for d in DEPTHS}
        if not all(by_depth.values()):
            continue
        medians = {d: {key: _median(runs, key) for key in ("process_wall_s", "export_s", "verify_s",
                                                             "export_and_verify_s")}
                   for d, runs in by_depth.items()}
        ratios = {key: medians[DEPTHS[-1]][key] / medians[DEPTHS[0]][key] for key in medians[DEPTHS[0]]}
        summary[mode] = {"median_by_depth": {str(d): m for d, m in medians.items()},
                         f"ratio_depth{DEPTHS[-1]}_to_depth{DEPTHS[0]}": ratios}
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=2, metavar=("DEPTH", "MODE"), help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--source", type=Path, default=ROOT, help="Source tree whose lion_export is measured.")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(int(args.child[0]), args.child[1])))
        return
    modes = [m for m in args.modes.split(",") if m]
    rows = []
    load_before = os.getloadavg()
    for repeat in range(args.repeats):
        for mode in modes:
            for depth in DEPTHS:
                row = run_child(depth, mode, args.source)
                rows.append(row)
                phases = ", ".join(f"{name} {seconds:.1f}" for name, seconds in row["phases"])
                print(f"[{repeat + 1}/{args.repeats}] {mode:>9} depth {depth:>2}: process {row['process_wall_s']:.1f} s "
                      f"(import {row['import_s']:.1f}, export {row['export_s']:.1f}, verify {row['verify_s']:.1f}; "
                      f"{phases})", flush=True)
    summary = summarize(rows)
    for mode, entry in summary.items():
        ratios = entry[f"ratio_depth{DEPTHS[-1]}_to_depth{DEPTHS[0]}"]
        deep = entry["median_by_depth"][str(DEPTHS[-1])]
        print(f"{mode}: depth {DEPTHS[-1]} / depth {DEPTHS[0]}: export+verify {ratios['export_and_verify_s']:.2f}x, "
              f"export {ratios['export_s']:.2f}x, process {ratios['process_wall_s']:.2f}x; depth {DEPTHS[-1]} "
              f"process {deep['process_wall_s']:.1f} s (median)")
    results = {"benchmark": "export_time", "model": "vit-tiny (dim 192, 3 heads, 197 tokens), LION-LIT",
               "source": str(args.source), "repeats": args.repeats, "cpu_count": os.cpu_count(),
               "load_average_before": load_before, "load_average_after": os.getloadavg(),
               "summary": summary, "runs": rows}
    sys.path.insert(0, str(ROOT))
    from lion_export.atomic import write_bytes_atomically

    args.out.mkdir(parents=True, exist_ok=True)
    target = write_bytes_atomically(args.out / "export_time.json", (json.dumps(results, indent=2) + "\n").encode())
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
