"""Benchmark: how long an export (+ its parity verification) takes at depth 1 and depth 12 (issue 12, item 3).

Model: vit-tiny (dim 192, 3 heads, 224 px, 197 tokens), LION-LIT, depth 1 and 12, chunked and recurrent. Every run
is a fresh Python process (`--child`), so each pays the imports and torch.onnx's first-use costs as a user's
command does; runs are interleaved (1, 12, 1, 12, ...) so both depths see the same machine state, and the medians
over `--repeats` are reported. Per run: the wall time of the whole process, the import time, each export phase as
export_onnx reports it (its `progress` callback), and verify_onnx's time (three batch sizes against the float64
eager reference, as `lion-export` runs it after every export).
Goals (issue 12): a 12-block chunked export with verification within 3x the 1-block one, and within 20 s on a
2-core machine. The machine is shared: quote the ratios, which are measured in one run.

--position-embedding (issue 17): depth 1, LION-S, with and without a learnt position embedding. Without one the
image sides are dynamic, so the token count is a product of two symbols that every traced shape carries (the
public checkpoints' case); the ratio of the two is reported, in wall and in CPU time (a shared machine inflates
the wall time of whichever run meets the load). Results: export_time_position_embedding.json.

    python benchmarks/export_time.py                         # 3 repeats of each (depth, mode): a few minutes
    python benchmarks/export_time.py --source /old/checkout --out /tmp/before --repeats 1   # another tree's code
    python benchmarks/export_time.py --position-embedding --repeats 1
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


def child(depth: int, mode: str, mask: str = "lit", pos_embed: bool = True) -> dict:
    """One export + verification in this (fresh) process; returns its timings."""
    started = time.perf_counter()
    import torch

    from lion_export import create_model
    from lion_export.export import export_onnx
    from lion_export.verify import verify_onnx
    imported = time.perf_counter()

    torch.manual_seed(0)
    model = create_model("vit-tiny", depth=depth, mask=mask, pos_embed=pos_embed).eval()
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
        export_start, export_cpu = time.perf_counter(), time.process_time()
        export_onnx(model, path, form=mode, progress=progress)
        exported, exported_cpu = time.perf_counter(), time.process_time()
        phases[-1][1] = exported - clock[0]
        report = verify_onnx(model, path, progress=False)
        verified = time.perf_counter()
        size = path.stat().st_size
    return {"depth": depth, "mode": mode, "mask": mask, "pos_embed": pos_embed, "import_s": imported - started,
            "export_s": exported - export_start, "export_cpu_s": exported_cpu - export_cpu,
            "verify_s": verified - exported, "export_and_verify_s": verified - export_start,
            "phases": phases, "passed": report.passed, "file_bytes": size}


def run_child(depth: int, mode: str, source: Path, mask: str = "lit", pos_embed: bool = True) -> dict:
    env = {**os.environ, "PYTHONPATH": str(source)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--child", str(depth), mode, mask, str(int(pos_embed))],
                          env=env, cwd=source,
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


def write_results(out: Path, name: str, results: dict) -> None:
    sys.path.insert(0, str(ROOT))
    from lion_export.atomic import write_bytes_atomically

    out.mkdir(parents=True, exist_ok=True)
    target = write_bytes_atomically(out / name, (json.dumps(results, indent=2) + "\n").encode())
    print(f"wrote {target}")


def position_embedding_comparison(args: argparse.Namespace, modes: list[str]) -> None:
    """LION-S at depth 1 with and without a position embedding, interleaved; the ratio of the medians."""
    rows = []
    load_before = os.getloadavg()
    for repeat in range(args.repeats):
        for mode in modes:
            for pos_embed in (True, False):
                row = run_child(1, mode, args.source, mask="selective", pos_embed=pos_embed)
                rows.append(row)
                print(f"[{repeat + 1}/{args.repeats}] {mode:>9} {'with' if pos_embed else 'without'} position "
                      f"embedding: export {row['export_s']:.1f} s (CPU {row['export_cpu_s']:.1f} s)", flush=True)
    summary = {}
    for mode in modes:
        medians = {pos: {key: _median([r for r in rows if r["mode"] == mode and r["pos_embed"] == pos], key)
                         for key in ("export_s", "export_cpu_s")} for pos in (True, False)}
        ratios = {key: medians[False][key] / medians[True][key] for key in medians[True]}
        summary[mode] = {"median_with": medians[True], "median_without": medians[False],
                         "ratio_without_to_with": ratios}
        print(f"{mode}: without / with a position embedding: export {ratios['export_s']:.2f}x, "
              f"export CPU time {ratios['export_cpu_s']:.2f}x")
    write_results(args.out, "export_time_position_embedding.json", {
        "benchmark": "export_time --position-embedding",
        "model": "vit-tiny (dim 192, 3 heads, 224 px), LION-S, depth 1",
        "source": str(args.source), "repeats": args.repeats, "cpu_count": os.cpu_count(),
        "load_average_before": load_before, "load_average_after": os.getloadavg(), "summary": summary, "runs": rows})


def depth_comparison(args: argparse.Namespace, modes: list[str]) -> None:
    """vit-tiny LION-LIT at depths 1 and 12, interleaved; the ratio of the medians (issue 12)."""
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
    write_results(args.out, "export_time.json", {
        "benchmark": "export_time", "model": "vit-tiny (dim 192, 3 heads, 197 tokens), LION-LIT",
        "source": str(args.source), "repeats": args.repeats, "cpu_count": os.cpu_count(),
        "load_average_before": load_before, "load_average_after": os.getloadavg(), "summary": summary, "runs": rows})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=4, metavar=("DEPTH", "MODE", "MASK", "POS_EMBED"), help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--position-embedding", action="store_true",
                        help="compare LION-S exports with and without a position embedding instead of the depths")
    parser.add_argument("--source", type=Path, default=ROOT, help="Source tree whose lion_export is measured.")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    if args.child:
        depth, mode, mask, pos_embed = args.child
        print(json.dumps(child(int(depth), mode, mask, pos_embed == "1")))
        return
    modes = [m for m in args.modes.split(",") if m]
    if args.position_embedding:
        position_embedding_comparison(args, modes)
    else:
        depth_comparison(args, modes)


if __name__ == "__main__":
    main()
