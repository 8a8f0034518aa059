"""Benchmark: TensorRT-RTX engine sizes of a model built fp32, fp16 and INT8 (issue 19: the INT8 engine should be
smaller than the fp16 one). Builds run here without a GPU; nothing is timed but the build.

Models: the two of benchmarks/int8_cpu.py (LION-S at 224 px, random weights: vit-tiny, dim 192 and 12 blocks, and
vit-base width, dim 768 and 4 blocks), in the recurrent form (its plugin build is the quick one,
benchmarks/engine_build.py). The fp32 and fp16 files are lion_export exports; the INT8 file is the fp32 one
quantized as int8_cpu.py does it, calibrated on standard-normal images (the scales do not change the engine's
size; real data would change its accuracy only).
The INT8 file is made twice: with the calibrated scales, and with one activation scale per role shared by every
block (`quantize --shared-block-scales`). Each file is built once for sm_89 with the profiles read from it. An
engine holds its weights in the precision the graph gives them: fp32, fp16, and for INT8 the int8 weights of the
linear layers (the rest stays fp32); beyond them, an INT8 engine carries code for each block whose activation
scales differ from the others' (lion_export/quantize/block_scales.py): all of them, unless the blocks share their
scales.

    python benchmarks/int8_engine.py          # eight builds, several minutes on 2 busy cores
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from int8_cpu import WIDTHS, build_model, quantize_on_noise

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ARCH = "sm_89"


def files(width: str, folder: Path) -> dict[str, Path]:
    """The fp32, fp16 and INT8 files of one model."""
    from lion_export.export import export_onnx

    model = build_model(width)
    made = {dtype: export_onnx(model, folder / f"{width}-{dtype}.onnx", form="recurrent", dtype=dtype)
            for dtype in ("fp32", "fp16")}
    made["int8"] = quantize_on_noise(made["fp32"], folder / f"{width}-int8.onnx")
    made["int8-shared"] = quantize_on_noise(made["fp32"], folder / f"{width}-int8-shared.onnx",
                                            shared_block_scales=True)
    return made


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "int8_engine.json")
    args = parser.parse_args()
    from lion_export.atomic import write_bytes_atomically
    from lion_export.engine.build import BuildOptions, build_engine

    points, summary = [], {}
    with tempfile.TemporaryDirectory(prefix="int8-engine-") as tmp:
        for width in WIDTHS:
            for dtype, onnx_path in files(width, Path(tmp)).items():
                report = build_engine(onnx_path, onnx_path.with_suffix(".engine"), BuildOptions(arch=ARCH))
                points.append({"width": width, **WIDTHS[width], "dtype": dtype, "onnx_bytes": onnx_path.stat().st_size,
                               "engine_bytes": report.engine_bytes, "build_seconds": round(report.build_seconds, 1),
                               "network_layers": report.network_layers,
                               "backend": f"{report.backend} {report.version}"})
                onnx_path.with_suffix(".engine").unlink()
                print(f"{width} {dtype}: onnx {points[-1]['onnx_bytes'] / 2**20:.1f} MiB, engine "
                      f"{report.engine_bytes / 2**20:.1f} MiB, built in {report.build_seconds:.0f} s", flush=True)
            size = {p["dtype"]: p["engine_bytes"] for p in points if p["width"] == width}
            summary[width] = {"int8_over_fp16": round(size["int8"] / size["fp16"], 3),
                              "int8_shared_over_fp16": round(size["int8-shared"] / size["fp16"], 3),
                              "int8_over_fp32": round(size["int8"] / size["fp32"], 3),
                              "goal_met": size["int8"] < size["fp16"],
                              "goal_met_shared": size["int8-shared"] < size["fp16"]}
            print(f"{width}: INT8 engine / fp16 engine {summary[width]['int8_over_fp16']:.2f}, with "
                  f"--shared-block-scales {summary[width]['int8_shared_over_fp16']:.2f} (goal < 1); INT8 / fp32 "
                  f"{summary[width]['int8_over_fp32']:.2f}", flush=True)
    results = {"arch": ARCH, "model": {"mask": "selective", "form": "recurrent", "image": 224, "patch": 16},
               "points": points, "ratios": summary}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomically(args.out, (json.dumps(results, indent=2) + "\n").encode())
    print(f"wrote {args.out}")
    return 0 if all(ratio["goal_met"] or ratio["goal_met_shared"] for ratio in summary.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
