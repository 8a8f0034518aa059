"""Benchmark: headroom of the calibrated parity bound (and of the fixed table) on realistic widths (issue 10).

For each (variant, model kind, mode, dtype): a model with its decays spread over 0.01..0.99
(lion_export.verify.stress.spread_decays) is exported and verified once with the calibrated bound at one
length (text: 129 tokens, padded batch of 2; vision: 197 tokens, 224 x 224 without a position embedding).
Recorded per row: onnxruntime's max error against float64 eager, eager PyTorch's own max error in the graph's
dtype and form, their ratio, the calibrated headroom (error / bound, <= 1 passes) and, from the same outputs,
the headroom under the fixed table. fp32 rows also verify a checkpoint with one block's weights moved by 1e-3
relative against the same file: that headroom must be far above 1. Results: JSON + a PNG of the headrooms.

    python benchmarks/verify_headroom.py                       # base widths (dim 768, depth 12): many minutes
    python benchmarks/verify_headroom.py --width small --quick # dim 384 / depth 6, LION-S only
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

WIDTHS = {"tiny": (64, 2, 2), "small": (384, 6, 6), "base": (768, 12, 12)}     # dim, depth, heads
TEXT_L, CHUNK = 129, 64


def build(kind: str, mask: str, width: str):
    import torch

    from lion_export.models import create_model
    from lion_export.verify.stress import spread_decays

    dim, depth, heads = WIDTHS[width]
    torch.manual_seed(0)
    if kind == "text":
        model = create_model("encoder-base", mask=mask, dim=dim, depth=depth, num_heads=heads)
    else:
        model = create_model("vit-base", mask=mask, dim=dim, depth=depth, num_heads=heads, pos_embed=False)
    return spread_decays(model.eval())


def perturb_one_block(model) -> None:
    import torch

    signs = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in model.blocks[len(model.blocks) // 2].parameters():
            param.mul_(1 + 1e-3 * (torch.randint(0, 2, param.shape, generator=signs) * 2 - 1))


def fixed_headroom(outputs_npz: Path, inputs_npz: Path, dtype: str) -> float:
    """The fixed table's headroom on the very outputs the calibrated run compared."""
    import numpy as np

    from lion_export.verify.compare import compare_output
    from lion_export.verify.case_inputs import split_cases
    from lion_export.verify.tolerances import tolerance_for

    outputs = split_cases(dict(np.load(outputs_npz)))
    inputs = split_cases(dict(np.load(inputs_npz)))
    worst = 0.0
    for name, expected in outputs["case0/expected"].items():
        mask = inputs["case0"].get("attention_mask")
        valid = mask.astype(bool) if mask is not None and expected.shape[:2] == mask.shape else None
        result = compare_output(name, expected, outputs["case0/actual"][name], tolerance_for(dtype), valid)
        worst = max(worst, result.max_headroom)
    return worst


def measure(kind: str, mask: str, mode: str, dtype: str, width: str, folder: Path) -> dict:
    import numpy as np

    from lion_export.export import export_onnx
    from lion_export.verify import verify_onnx

    model = build(kind, mask, width)
    path = folder / f"{kind}-{mask}-{mode}-{dtype}.onnx"
    start = time.perf_counter()
    export_onnx(model, path, form=mode, dtype=dtype, chunk_size=CHUNK, seq_len=TEXT_L if kind == "text" else None)
    exported = time.perf_counter() - start
    lengths = [TEXT_L] if kind == "text" else [197]
    start = time.perf_counter()
    report = verify_onnx(model, path, seq_lens=lengths, progress=False, save_inputs=folder / "in.npz",
                         save_outputs=folder / "out.npz")
    verified = time.perf_counter() - start
    (out,) = report.cases[0].outputs
    saved = np.load(folder / "out.npz")
    eager_error = float(out.tolerance.basis.split("error ")[1].split(" ")[0])
    row = {"kind": kind, "mask": mask, "mode": mode, "dtype": dtype, "width": width, "L": lengths[0],
           "export_s": round(exported, 1), "verify_s": round(verified, 1),
           "ort_max_error": out.max_abs_error, "eager_max_error": eager_error,
           "ratio": out.max_abs_error / eager_error if eager_error else None,
           "output_max_abs": float(np.abs(saved["case0/expected/" + out.name]).max()),
           "bound": out.tolerance.atol, "calibrated_headroom": out.headroom, "calibrated_passed": out.passed,
           "fixed_headroom": fixed_headroom(folder / "out.npz", folder / "in.npz", dtype)}
    row["fixed_passed"] = row["fixed_headroom"] <= 1.0
    if dtype == "fp32":
        perturb_one_block(model)
        wrong = verify_onnx(model, path, seq_lens=lengths, progress=False)
        row["perturbed_headroom"] = wrong.cases[0].outputs[0].headroom
        row["perturbed_failed"] = not wrong.passed
    return row


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['kind']} {r['mask']} {r['mode']} {r['dtype']}" for r in rows]
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(rows) + 2), 4.5))
    x = range(len(rows))
    ax.bar([i - 0.2 for i in x], [r["calibrated_headroom"] for r in rows], width=0.4, label="calibrated")
    ax.bar([i + 0.2 for i in x], [r["fixed_headroom"] for r in rows], width=0.4, label="fixed table")
    perturbed = [(i, r["perturbed_headroom"]) for i, r in zip(x, rows) if "perturbed_headroom" in r]
    if perturbed:
        ax.scatter(*zip(*perturbed), marker="x", color="r", label="one block perturbed 1e-3 (calibrated)")
    ax.axhline(1.0, color="k", linestyle="--", label="bound")
    ax.set_yscale("log")
    ax.set_xticks(list(x), labels, rotation=45, ha="right", fontsize="small")
    ax.set_ylabel("headroom = max |err| / bound")
    ax.set_title(f"parity headroom, width {rows[0]['width']} ({'x'.join(map(str, WIDTHS[rows[0]['width']]))})")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", choices=list(WIDTHS), default="base")
    parser.add_argument("--quick", action="store_true", help="LION-S only")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    masks = ["selective"] if args.quick else ["lit", "decay", "selective"]
    plan = [(kind, mask, mode, dtype) for kind in ("text", "vision") for mask in masks
            for mode, dtype in (("chunked", "fp32"), ("chunked", "fp16"), ("recurrent", "fp32"))]
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        for kind, mask, mode, dtype in plan:
            row = measure(kind, mask, mode, dtype, args.width, Path(folder))
            rows.append(row)
            print(f"[{time.perf_counter() - start:6.0f}s] {kind:6} {mask:9} {mode:9} {dtype}: ort {row['ort_max_error']:.2e}"
                  f" eager {row['eager_max_error']:.2e} (x{row['ratio']:.2f}) calibrated headroom "
                  f"{row['calibrated_headroom']:.3f} fixed {row['fixed_headroom']:.3f}"
                  + (f" perturbed {row['perturbed_headroom']:.1f}" if "perturbed_headroom" in row else ""),
                  flush=True)
            result = {"width": args.width, "dims": WIDTHS[args.width], "rows": rows,
                      "complete": len(rows) == len(plan)}
            (args.out / f"verify_headroom_{args.width}.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(rows, args.out / f"verify_headroom_{args.width}.png")


if __name__ == "__main__":
    main()
