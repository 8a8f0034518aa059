"""Benchmark: INT8 against fp32 in onnxruntime on the CPU, one thread (issue 19: INT8 >= 1.8x faster at vit-base
width, >= 1.3x at vit-tiny width, the file >= 3x smaller).

Models: LION-S vision transformers, 224 px images in patches of 16 (197 tokens), 1000 classes, random weights,
seeded: vit-base width (dim 768, 12 heads, 4 blocks) and vit-tiny width (dim 192, 3 heads, 12 blocks). Each is
exported fp32 in the recurrent and the chunked form (lion_export.export.export_onnx) and quantized with
lion_export.quantize.quantize_onnx, calibrated on standard-normal images (speed does not depend on the scales).
All sessions of one width live in one process, 1 intra-op thread, denormals flushed to zero (as in
benchmarks/onnx_cpu.py), and run interleaved (fp32, int8, fp32, int8, ...) on one batch-1 image, so both files see
the same machine state: the figures are the medians of those rounds and their ratio.
Where the time goes: onnxruntime's profiler over a few extra runs of each file, split into the linear layers (the
nodes quantization touches, by name: fused or not) and the rest (the LION mixer, LayerNorms, residuals, Q/DQ).
Quantization can only shrink the first part, so `fp32_linear_share` bounds what INT8 can gain. The profiler adds a
cost per node, which weighs on the thousands of small nodes of the rest more than on the few large GEMMs: read
the share as a lower bound.

    python benchmarks/int8_cpu.py            # both widths, both forms (a few minutes on 2 cores)
    python benchmarks/int8_cpu.py --quick    # recurrent form only, fewer rounds
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from plotting import plot_grouped_bars

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WIDTHS = {"vit-base": {"dim": 768, "num_heads": 12, "depth": 4},
          "vit-tiny": {"dim": 192, "num_heads": 3, "depth": 12}}
GOALS = {"vit-base": 1.8, "vit-tiny": 1.3}
SIZE_GOAL = 3.0
IMAGE = (1, 3, 224, 224)


def build_model(width: str):
    """The benchmark model at `width`, seeded, in eval mode."""
    import torch

    from lion_export import create_model

    torch.manual_seed(0)
    return create_model("vit-tiny", mask="selective", img_size=IMAGE[-1], patch_size=16, num_classes=1000,
                        **WIDTHS[width]).eval()


def quantize_on_noise(fp32: Path, int8: Path, shared_block_scales: bool = False) -> Path:
    """`fp32` quantized to `int8`, calibrated on two batches of standard-normal images: a benchmark's stand-in for
    real data (speed does not depend on the scales, nor engine size beyond how many distinct ones there are; the
    command refuses to do this). shared_block_scales: `quantize --shared-block-scales`."""
    import numpy as np

    from lion_export.quantize import QuantizeOptions, quantize_onnx
    from lion_export.quantize.calibration import feeds_from_callable

    rng = np.random.default_rng(0)

    def images():
        return [{"images": rng.standard_normal((4, *IMAGE[1:])).astype(np.float32)} for _ in range(2)]

    quantize_onnx(fp32, int8, lambda specs: feeds_from_callable(images, specs),
                  QuantizeOptions(shared_block_scales=shared_block_scales))
    return int8


def make_files(width: str, forms: tuple[str, ...], folder: Path) -> dict[str, dict[str, Path]]:
    """{form: {"fp32": path, "int8": path}} for one width."""
    from lion_export.export import export_onnx

    model = build_model(width)
    made = {}
    for form in forms:
        fp32 = export_onnx(model, folder / f"{width}-{form}.onnx", form=form)
        made[form] = {"fp32": fp32, "int8": quantize_on_noise(fp32, folder / f"{width}-{form}.int8.onnx")}
        print(f"{width} {form}: exported and quantized", flush=True)
    return made


def session(path: Path, profile_prefix: str | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.add_session_config_entry("session.set_denormal_as_zero", "1")
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def interleaved_medians(paths: dict[str, Path], feed: dict, rounds: int) -> dict[str, float]:
    """Median seconds per file, runs interleaved across the files after one warm-up each."""
    sessions = {name: session(path) for name, path in paths.items()}
    for run in sessions.values():
        run.run(None, feed)
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(rounds):
        for name, run in sessions.items():
            start = time.perf_counter()
            run.run(None, feed)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def linear_layer_split(path: Path, linear_nodes: set[str], feed: dict, folder: Path, runs: int = 7) -> dict:
    """Kernel milliseconds of one run in the linear layers and in the rest, from onnxruntime's profiler: the least
    over `runs` runs of each part (after a warm-up run, left out), the figure other jobs on the machine inflate
    least."""
    run = session(path, str(folder / "profile"))
    for _ in range(runs + 1):
        run.run(None, feed)
    profile = Path(run.end_profiling())
    events = json.loads(profile.read_text())
    profile.unlink()
    spans = sorted((e["ts"], e["ts"] + e["dur"]) for e in events if e.get("name") == "model_run")[1:]
    linear, rest = [0.0] * len(spans), [0.0] * len(spans)
    for event in events:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        index = next((i for i, (begin, end) in enumerate(spans) if begin <= event["ts"] <= end), None)
        if index is not None:
            part = linear if event["name"].removesuffix("_kernel_time") in linear_nodes else rest
            part[index] += event["dur"] / 1e3
    return {"linear_ms": round(min(linear), 2), "rest_ms": round(min(rest), 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="recurrent form only, 11 rounds")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds per width (default 15)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    import numpy as np
    import onnx

    from lion_export.quantize.selection import linear_layers

    forms = ("recurrent",) if args.quick else ("recurrent", "chunked")
    rounds = 11 if args.quick else args.rounds
    feed = {"images": np.random.default_rng(1).standard_normal(IMAGE).astype(np.float32)}
    rows = []
    with tempfile.TemporaryDirectory(prefix="int8-cpu-") as tmp:
        folder = Path(tmp)
        for width in WIDTHS:
            made = make_files(width, forms, folder)
            medians = interleaved_medians({f"{form}/{dtype}": path for form, pair in made.items()
                                           for dtype, path in pair.items()}, feed, rounds)
            for form, pair in made.items():
                nodes = set(linear_layers(onnx.load(str(pair["fp32"]), load_external_data=False)))
                split = {dtype: linear_layer_split(path, nodes, feed, folder) for dtype, path in pair.items()}
                fp32_s, int8_s = medians[f"{form}/fp32"], medians[f"{form}/int8"]
                row = {"width": width, **WIDTHS[width], "form": form, "fp32_ms": round(fp32_s * 1e3, 2),
                       "int8_ms": round(int8_s * 1e3, 2), "speedup": round(fp32_s / int8_s, 3),
                       "goal": GOALS[width], "fp32_bytes": pair["fp32"].stat().st_size,
                       "int8_bytes": pair["int8"].stat().st_size, "profile": split,
                       "fp32_linear_share": round(split["fp32"]["linear_ms"]
                                                  / (split["fp32"]["linear_ms"] + split["fp32"]["rest_ms"]), 3)}
                row["size_ratio"] = round(row["fp32_bytes"] / row["int8_bytes"], 2)
                rows.append(row)
                verdict = "MET" if row["speedup"] >= GOALS[width] else "NOT MET"
                print(f"{width} {form}: fp32 {row['fp32_ms']:.1f} ms, int8 {row['int8_ms']:.1f} ms: "
                      f"{row['speedup']:.2f}x (goal {GOALS[width]}x) {verdict}; "
                      f"file {row['fp32_bytes'] / 2**20:.1f} -> {row['int8_bytes'] / 2**20:.1f} MiB "
                      f"({row['size_ratio']:.2f}x); linear layers {100 * row['fp32_linear_share']:.0f}% of fp32 "
                      f"time ({split['fp32']['linear_ms']:.1f} -> {split['int8']['linear_ms']:.1f} ms in the profile)",
                      flush=True)
    met = all(r["speedup"] >= r["goal"] and r["size_ratio"] >= SIZE_GOAL for r in rows)
    name = "int8_cpu" + ("_quick" if args.quick else "")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.json").write_text(json.dumps({"threads": 1, "rounds": rounds, "image": list(IMAGE),
                                                       "onnxruntime": _version(), "rows": rows,
                                                       "goals_met": met}, indent=1) + "\n")
    plot_grouped_bars({f"{r['width']}\n{r['form']}": {"fp32": r["fp32_ms"], "int8": r["int8_ms"]} for r in rows},
                      "median latency (ms)", "LION-S, 224 px (197 tokens), batch 1, onnxruntime CPU, 1 thread",
                      args.out / f"{name}.png")
    print(f"wrote {args.out / (name + '.json')} and {args.out / (name + '.png')}")
    return 0 if met else 1


def _version() -> str:
    import onnxruntime

    return onnxruntime.__version__


if __name__ == "__main__":
    raise SystemExit(main())
