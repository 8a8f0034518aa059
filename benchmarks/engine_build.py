"""Benchmark: TensorRT-RTX engine builds here (no GPU needed): build time and engine size of every export mode at
vit-tiny and encoder-base sizes, and the recurrent file built two ways (issue 8, Performance: the plugin path
should build >= 2x faster and give a >= 2x smaller engine than the inlined-function path for the same file).

Models: LION-S (the variant whose scan carries per-token decays), `vit-tiny` (dim 192, depth 12, 224 px: 197
tokens, fixed by the position embedding) and `encoder-base` (dim 768, depth 12, max_len 512), random weights.
Each model is exported once per mode (parallel, chunked, recurrent; fp32, default opset) with lion_export's
exporter, then each file is built `--repeats` times with `lion_export.engine.build.build_engine` for one target
(sm_89) with the default profiles read from the file; the recurrent file is built with the plugin bound
(`lion::SelectiveScan`, one PLUGIN_V3 layer per mixer) and with --no-plugin (the local function inlined: TensorRT
loops). Build time is parse + optimise + serialise, the median of the repeats; the two recurrent paths run
interleaved (plugin, inlined, plugin, ...) so both see the same machine state, and the ratios are taken from
those medians. The machine is shared: read ratios, not absolute seconds.
Every engine holds the model's weights (`weight_bytes`: the fp32 parameters, 22 MiB at vit-tiny, 508 MiB at
encoder-base), which no build path can shrink; `engine_size_beyond_weights_inlined_over_plugin` compares what each
path adds to them (the scan's code: loops or one plugin record per mixer).

    python benchmarks/engine_build.py                 # both sizes, 3 repeats (tens of minutes on 2 busy cores)
    python benchmarks/engine_build.py --sizes vit-tiny --repeats 1
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZES = ("vit-tiny", "encoder-base")
MODES = ("parallel", "chunked", "recurrent")
ARCH = "sm_89"


def weight_bytes(size: str) -> int:
    """Bytes of the model's fp32 parameters: the part of every engine that no build path changes."""
    from lion_export import create_model

    return sum(p.numel() * p.element_size() for p in create_model(size, mask="selective").parameters())


def export(size: str, mode: str, folder: Path) -> tuple[Path, float]:
    import torch

    from lion_export import create_model
    from lion_export.export import export_onnx

    torch.manual_seed(0)
    model = create_model(size, mask="selective").eval()
    started = time.perf_counter()
    path = export_onnx(model, folder / f"{size}-{mode}.onnx", form=mode)
    return path, time.perf_counter() - started


def build(onnx_path: Path, folder: Path, use_plugin: bool) -> dict:
    from lion_export.engine.build import BuildOptions, build_engine

    engine = folder / f"{onnx_path.stem}-{'plugin' if use_plugin else 'inlined'}.engine"
    report = build_engine(onnx_path, engine, BuildOptions(arch=ARCH, use_plugin=use_plugin))
    engine.unlink()
    return {"build_seconds": report.build_seconds, "engine_bytes": report.engine_bytes,
            "network_layers": report.network_layers, "plugin_layers": report.plugin_layers,
            "backend": f"{report.backend} {report.version}", "profiles": report.profiles}


def summarize(runs: list[dict]) -> dict:
    first = runs[0]
    return {**{k: first[k] for k in ("engine_bytes", "network_layers", "plugin_layers", "backend", "profiles")},
            "build_seconds_median": round(statistics.median(r["build_seconds"] for r in runs), 3),
            "build_seconds_all": [r["build_seconds"] for r in runs]}


def write_results(path: Path, results: dict) -> None:
    from lion_export.atomic import write_bytes_atomically

    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomically(path, (json.dumps(results, indent=2) + "\n").encode())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(SIZES), help="comma-separated: vit-tiny, encoder-base")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "engine_build.json")
    args = parser.parse_args()
    sizes = [s for s in args.sizes.split(",") if s]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown or args.repeats < 1:
        parser.error(f"unknown size(s) {unknown}; valid: {', '.join(SIZES)}" if unknown else "--repeats >= 1")
    results = {"arch": ARCH, "repeats": args.repeats, "variant": "LION-S", "dtype": "fp32", "points": []}
    with tempfile.TemporaryDirectory(prefix="engine-build-") as tmp:
        folder = Path(tmp)
        for size in sizes:
            for mode in MODES:
                onnx_path, export_seconds = export(size, mode, folder)
                print(f"{size} {mode}: exported in {export_seconds:.1f} s ({onnx_path.stat().st_size / 2**20:.1f} "
                      "MiB)", flush=True)
                paths = (True, False) if mode == "recurrent" else (True,)
                runs: dict[bool, list[dict]] = {p: [] for p in paths}
                for _ in range(args.repeats):
                    for use_plugin in paths:          # interleaved: both paths see the same machine state
                        runs[use_plugin].append(build(onnx_path, folder, use_plugin))
                for use_plugin in paths:
                    label = mode if mode != "recurrent" else f"recurrent-{'plugin' if use_plugin else 'inlined'}"
                    point = {"size": size, "mode": label, "onnx_bytes": onnx_path.stat().st_size,
                             "export_seconds": round(export_seconds, 2), **summarize(runs[use_plugin])}
                    results["points"].append(point)
                    print(f"  {label}: {point['build_seconds_median']:.1f} s, {point['engine_bytes'] / 2**20:.1f} "
                          f"MiB, {point['network_layers']} layers ({point['plugin_layers']} plugin)", flush=True)
                if mode == "recurrent":
                    plugin, inlined = (summarize(runs[p]) for p in (True, False))
                    weights = weight_bytes(size)
                    ratio = {"size": size, "weight_bytes": weights,
                             "build_time_inlined_over_plugin": round(inlined["build_seconds_median"]
                                                                     / plugin["build_seconds_median"], 2),
                             "engine_size_inlined_over_plugin": round(inlined["engine_bytes"]
                                                                      / plugin["engine_bytes"], 2),
                             "engine_size_beyond_weights_inlined_over_plugin": round(
                                 (inlined["engine_bytes"] - weights) / (plugin["engine_bytes"] - weights), 2)}
                    ratio["goal_met"] = (ratio["build_time_inlined_over_plugin"] >= 2
                                         and ratio["engine_size_inlined_over_plugin"] >= 2)
                    results.setdefault("ratios", []).append(ratio)
                    print(f"  ratios: {ratio}", flush=True)
                onnx_path.unlink()
                write_results(args.out, results)      # after every file: a cut run keeps what it measured
    print(f"wrote {args.out}")
    return 0 if all(r["goal_met"] for r in results.get("ratios", [])) else 1


if __name__ == "__main__":
    raise SystemExit(main())
