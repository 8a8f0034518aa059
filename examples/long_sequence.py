"""A long-range retrieval task: LION-S against a softmax Transformer of the same width, trained briefly, exported
to ONNX and compared in onnxruntime on accuracy, latency and peak memory at long sequence lengths.

    python examples/long_sequence.py                          # train up to L = 256, compare at L = 256 .. 16384
    python examples/long_sequence.py --train-len 16 --steps 80 --eval-lens 64,256 --bench-lens 256,1024

The task (generated on the fly, nothing to download): a sequence of L random filler tokens whose first token is a
query token; somewhere in it a marker token is followed by one of 8 value tokens; the model must name that value
from its output at position 0, so information has to travel from anywhere in the sequence to its start. Accuracy by
chance: 12.5%.

What makes LION-S learn it in a minute of CPU (measured; see docs/examples.md):
- No position embeddings (pos_embed=False): LION's decay already knows distances, and a learnt position embedding
  adds to every filler token's key a term whose dot product with the query changes sign with the position (the
  MLM convention's feature map is the identity), drowning the one informative token. Without them every filler
  token is the same vector, which the model learns to ignore, and nothing depends on positions beyond the training
  length: the model is evaluated at lengths it never saw.
- A length curriculum: the training length doubles from 16 to --train-len over the first half of the steps. At
  L = 128 and above from the first step, the value token is 1/L of what position 0 sees at initialisation and
  LION-S does not leave chance in 200 steps (the softmax twin does); at L = 16 LION-S learns it in 50-100 steps,
  and each doubling then costs a few.
- A LayerNorm after each mixer (layer_norm_after=True, the public MLM option): the MLM convention has no row
  normalisation, so the mixer output grows with L; the norm makes it scale-free across lengths. (Not required at
  L = 1024: a run without it also reached 100% there.)
- Decays initialised near 1 (start_decays_near_one), so the far tokens are seen from the first step.

Models: the LION text encoder (MLM convention, LION-S by default) at dim 64, 2 blocks of 2 heads, vocabulary 16,
and its softmax twin (lion_export.bench.baseline: the same model with every LION mixer replaced by softmax
attention), each trained with its own weights on the same batches. LION trains in the chunked form (the Triton
kernels on CUDA). Exports: LION chunked and recurrent (lion_export.export.export_onnx, parity verified), softmax
through torch.onnx (the same exporter, parallel form). Accuracy: onnxruntime on the exported graphs, on a fixed
evaluation set per length. Latency and peak memory: `lion-export bench`'s machinery (lion_export.bench.run_bench),
each point in a fresh process. Outputs in --out (default: examples/out/long_sequence/, ignored by git):
long_sequence.json, long_sequence.png, bench.json, bench.png and the checkpoints.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import NoReturn

import numpy as np

QUERY, MARKER, FIRST_VALUE, VALUES, FILLER, VOCAB = 1, 2, 3, 8, 11, 16
DEFAULT_OUT = Path(__file__).resolve().parent / "out" / "long_sequence"   # examples/out/ is in .gitignore
FIRST_TRAIN_LEN = 16


def fail(message: str, status: int = 2) -> NoReturn:
    print(f"long_sequence.py: error: {message}", file=sys.stderr)
    raise SystemExit(status)


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see --help)")


def _lengths(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or any(n < 8 for n in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 8, got {text!r}")
    return values


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = OneLineParser(description="LION-S vs softmax attention on a long-range retrieval task.")
    parser.add_argument("--mask", default="selective", choices=("lit", "decay", "selective"))
    parser.add_argument("--train-len", type=int, default=256,
                        help="longest training length; a curriculum doubles the length from 16 up to it (default 256)")
    parser.add_argument("--steps", type=int, default=200, help="training steps per model (default 200)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--eval-lens", type=_lengths, default=[256, 1024, 4096, 16384], help="accuracy lengths")
    parser.add_argument("--eval-size", type=int, default=64, help="sequences per evaluation length (default 64)")
    parser.add_argument("--softmax-eval-max", type=int, default=4096,
                        help="longest L at which the softmax twin's accuracy is measured: a run of its graph holds "
                             "~1 GiB per sequence at 4096 (L x L scores), 4x that at each doubling (default 4096)")
    parser.add_argument("--bench-lens", type=_lengths, default=[1024, 2048, 4096, 8192, 16384],
                        help="latency lengths")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads everywhere (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="directory for every output (default: examples/out/long_sequence)")
    args = parser.parse_args(argv)
    for name in ("train_len", "steps", "batch_size", "dim", "heads", "depth", "eval_size", "softmax_eval_max",
                 "threads"):
        if getattr(args, name) <= 0:
            fail(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    if args.train_len < 8:
        fail(f"--train-len must be at least 8, got {args.train_len}")
    if args.dim % args.heads:
        fail(f"--dim ({args.dim}) must be a multiple of --heads ({args.heads})")
    if args.out.exists() and not args.out.is_dir():
        fail(f"--out {args.out} is not a directory")
    return args


def make_batch(rng: np.random.Generator, batch: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids (B, L) int64, labels (B,) in [0, VALUES)): query at 0, the filler token elsewhere, the marker
    at a random position followed by the answer."""
    ids = np.full((batch, length), FILLER)
    ids[:, 0] = QUERY
    labels = rng.integers(0, VALUES, size=batch)
    where = rng.integers(1, length - 1, size=batch)
    ids[np.arange(batch), where] = MARKER
    ids[np.arange(batch), where + 1] = FIRST_VALUE + labels
    return ids.astype(np.int64), labels.astype(np.int64)


def curriculum_length(step: int, steps: int, train_len: int) -> int:
    """The training length at `step` (0-based): 16, doubling evenly over the first half of the steps up to
    train_len, then train_len. Why: the value token is 1/L of what the query sees at initialisation, so at long L
    from the start LION-S finds no gradient (measured: chance after 200 steps at 128); learnt short, the rule
    carries over to long L."""
    doublings = max(0, (train_len // FIRST_TRAIN_LEN).bit_length() - 1)
    half = max(1, steps // 2)
    return min(train_len, FIRST_TRAIN_LEN * 2 ** ((doublings + 1) * step // half))


def value_logits(logits):
    """The classifier's scores: the vocabulary logits at position 0, restricted to the 8 value tokens."""
    return logits[:, 0, FIRST_VALUE:FIRST_VALUE + VALUES]


def start_decays_near_one(model) -> None:
    """Initialise every decay at lambda ~ 0.999 (LION-S: Wa_i's bias -7, LION-D: a_i = 7), so that at L = 1024 a
    token still sees ~40% of the farthest one. From the default init (lambda ~ 0.5) the decay over 1000 tokens is
    ~1e-300: no gradient reaches the far tokens and the task never trains; near 1, LION starts like LION-LIT and
    learns where to forget."""
    import torch

    from lion_export import LionAttention

    with torch.no_grad():
        for mixer in model.modules():
            if isinstance(mixer, LionAttention):
                if hasattr(mixer, "Wa_i"):
                    mixer.Wa_i.bias.fill_(-7.0)
                    mixer.Wa_i.weight.mul_(0.1)
                elif hasattr(mixer, "ai"):
                    mixer.ai.fill_(7.0)


def build_models(args: argparse.Namespace, longest: int):
    import torch

    from lion_export import create_model
    from lion_export.bench.baseline import softmax_twin

    torch.manual_seed(args.seed)
    sizes = {"mask": args.mask, "dim": args.dim, "num_heads": args.heads, "depth": args.depth, "vocab_size": VOCAB,
             "max_len": longest, "mlp_ratio": 2.0, "pos_embed": False, "layer_norm_after": True}
    lion = create_model("encoder-tiny", **sizes, chunk_size=64)
    start_decays_near_one(lion)
    torch.manual_seed(args.seed)
    softmax = softmax_twin(create_model("encoder-tiny", **sizes))
    return lion, softmax


def train(model, name: str, args: argparse.Namespace, device: str) -> tuple[float, float]:
    """Train in place on fresh batches; returns (seconds, accuracy over the last 20 steps' batches)."""
    import torch
    import torch.nn.functional as F

    model.to(device).train()
    rng = np.random.default_rng(args.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=args.steps, pct_start=0.1)
    start, recent = time.perf_counter(), []
    report_every = max(1, args.steps // 10)
    for step in range(1, args.steps + 1):
        length = curriculum_length(step - 1, args.steps, args.train_len)
        ids, labels = (torch.from_numpy(a).to(device) for a in make_batch(rng, args.batch_size, length))
        scores = value_logits(model(ids))
        loss = F.cross_entropy(scores, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        recent = (recent + [(scores.argmax(-1) == labels).float().mean().item()])[-20:]
        if step % report_every == 0 or step == args.steps:
            print(f"  {name} step {step:>4}/{args.steps}  L {length:>5}  loss {loss.item():.3f}  recent accuracy "
                  f"{np.mean(recent):.1%}  ({time.perf_counter() - start:.0f} s)", flush=True)
    model.cpu().eval()
    return time.perf_counter() - start, float(np.mean(recent))


def eval_set(length: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The fixed evaluation set at `length` (seeded by the length, never a training batch)."""
    return make_batch(np.random.default_rng(10_000 + length), size, length)


def onnx_predictions(path: Path, ids: np.ndarray, threads: int) -> np.ndarray:
    """The exported graph's predicted values for `ids`, 8 sequences per run."""
    from lion_export.runners import OnnxRuntimeRunner

    predictions = []
    with OnnxRuntimeRunner(path, threads=threads) as runner:
        for start in range(0, len(ids), 8):
            chunk = ids[start:start + 8]
            (logits,) = runner.infer({"input_ids": chunk, "attention_mask": np.ones_like(chunk)}).values()
            predictions.append(value_logits(logits).argmax(-1))
    return np.concatenate(predictions)


def eager_predictions(model, ids: np.ndarray) -> np.ndarray:
    """The PyTorch model's predicted values for `ids` (in its current form), 8 sequences per call."""
    import torch

    with torch.no_grad():
        return np.concatenate([value_logits(model(torch.from_numpy(ids[start:start + 8]))).argmax(-1).numpy()
                               for start in range(0, len(ids), 8)])


def plot(rows: list[dict], points: list[dict], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lion_export.bench.length_plot import save_length_figure

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for key, label in (("lion_chunked", "LION chunked"), ("lion_recurrent", "LION recurrent"),
                       ("softmax", "softmax")):
        measured = [r for r in rows if r[key] is not None]
        axes[0].plot([r["seq_len"] for r in measured], [100 * r[key] for r in measured], marker="o", label=label)
    axes[0].axhline(100 / VALUES, color="grey", linestyle=":", label="chance")
    axes[0].set(xscale="log", xlabel="sequence length L", ylabel="accuracy (%, onnxruntime)")
    for series in dict.fromkeys(p["series"] for p in points):
        ok = [p for p in points if p["series"] == series and p["status"] == "ok"]
        if ok:
            axes[1].plot([p["seq_len"] for p in ok], [p["median_ms"] for p in ok], marker="o", label=series)
            axes[2].plot([p["seq_len"] for p in ok], [max(p["peak_mib"], 1e-3) for p in ok], marker="o",
                         label=series)
    axes[1].set(xscale="log", yscale="log", xlabel="sequence length L", ylabel="onnxruntime latency (ms, median)")
    axes[2].set(xscale="log", yscale="log", xlabel="sequence length L", ylabel="peak memory of a run (MiB)")
    save_length_figure(fig, title, path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from lion_export import save_checkpoint, set_form
    from lion_export.atomic import write_bytes_atomically
    from lion_export.bench import BenchRequest, run_bench
    from lion_export.export import export_onnx
    from lion_export.verify import verify_onnx

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    longest = max(args.train_len, *args.eval_lens, *args.bench_lens)
    lion, softmax = build_models(args, longest)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    set_form(lion, "chunked")
    print(f"training both models for {args.steps} steps at L = {FIRST_TRAIN_LEN} .. {args.train_len}, batch {args.batch_size}, on {device}",
          flush=True)
    lion_seconds, lion_train_acc = train(lion, "LION", args, device)
    softmax_seconds, softmax_train_acc = train(softmax, "softmax", args, device)
    checkpoint = save_checkpoint(lion, args.out / "long_sequence_lion.pt")

    graphs, ok = {}, True
    for name, model, mode in (("lion_chunked", lion, "chunked"), ("lion_recurrent", lion, "recurrent"),
                              ("softmax", softmax, "parallel")):
        path = args.out / f"long_sequence_{name}.onnx"
        start = time.perf_counter()
        export_onnx(model, path, form=mode, batch=2, seq_len=min(256, args.train_len))
        line = f"exported {path.name} in {time.perf_counter() - start:.0f} s"
        if name != "softmax":
            report = verify_onnx(model, path, progress=False)
            ok &= report.passed
            line += f"; parity {'PASSED' if report.passed else 'FAILED'}"
        print(line, flush=True)
        graphs[name] = path

    rows = []
    for length in args.eval_lens:
        ids, labels = eval_set(length, args.eval_size)
        predictions = {name: onnx_predictions(path, ids, args.threads) for name, path in graphs.items()
                       if name != "softmax" or length <= args.softmax_eval_max}
        row: dict = {"seq_len": length, "softmax": None,
                     **{name: float((p == labels).mean()) for name, p in predictions.items()}}
        row["lion_forms_differ"] = int((predictions["lion_chunked"] != predictions["lion_recurrent"]).sum())
        row["lion_eager_differs"] = int((predictions["lion_chunked"] != eager_predictions(lion, ids)).sum())
        ok &= row["lion_forms_differ"] == 0 and row["lion_eager_differs"] == 0
        rows.append(row)
        print(f"accuracy at L = {length}: LION chunked {row['lion_chunked']:.1%}, recurrent {row['lion_recurrent']:.1%}, "
              f"softmax {'not measured' if row['softmax'] is None else format(row['softmax'], '.1%')}; LION predictions differing: chunked vs recurrent "
              f"{row['lion_forms_differ']}, eager vs onnxruntime {row['lion_eager_differs']}", flush=True)

    print(f"benchmarking onnxruntime at L = {', '.join(map(str, args.bench_lens))} (a fresh process per point)",
          flush=True)
    bench = run_bench(BenchRequest(checkpoint=checkpoint, forms=("chunked", "recurrent"), backends=("onnxruntime",),
                                   seq_lens=tuple(args.bench_lens), threads=args.threads, repeats=3, warmup=1,
                                   out=args.out),
                      lambda text, done, total: print(f"  [{min(done + 1, total)}/{total}] {text}", flush=True)
                      if text != "done" else None,
                      graphs={"lion_chunked": graphs["lion_chunked"], "lion_recurrent": graphs["lion_recurrent"],
                              "softmax_parallel": graphs["softmax"]})
    points = bench["points"]

    def cell(series: str, length: int) -> str:
        point = next((p for p in points if p["series"] == series and p["seq_len"] == length), None)
        if point is None:
            return "-"
        return f"{point['median_ms']:.1f} ms / {point['peak_mib']:.0f} MiB" if point["status"] == "ok" \
            else point["status"]

    print(f"\n{'L':>6} | {'LION-S acc':>10} | {'softmax acc':>11} | {'LION chunked':>20} | {'LION recurrent':>20} | "
          f"{'softmax':>20}")
    accuracy = {r["seq_len"]: r for r in rows}
    for length in sorted(set(args.eval_lens) | set(args.bench_lens)):
        row = accuracy.get(length)
        lion_acc = f"{row['lion_chunked']:.1%}" if row else "-"
        soft_acc = f"{row['softmax']:.1%}" if row and row["softmax"] is not None else "-"
        print(f"{length:>6} | {lion_acc:>10} | {soft_acc:>11} | {cell('chunked/onnxruntime', length):>20} | "
              f"{cell('recurrent/onnxruntime', length):>20} | {cell('softmax/onnxruntime', length):>20}")
    document = {"task": {"values": VALUES, "vocab_size": VOCAB, "chance": 1 / VALUES},
                "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                "training": {"lion_seconds": lion_seconds, "softmax_seconds": softmax_seconds,
                             "lion_final_train_accuracy": lion_train_acc,
                             "softmax_final_train_accuracy": softmax_train_acc},
                "accuracy": rows, "bench": points, "machine": bench["machine"]}
    write_bytes_atomically(args.out / "long_sequence.json", json.dumps(document, indent=1).encode() + b"\n")
    plot(rows, points, args.out / "long_sequence.png",
         f"retrieval next to a marker: LION-{'S' if args.mask == 'selective' else args.mask} vs softmax, "
         f"dim {args.dim}, depth {args.depth}, trained {args.steps} steps at L <= {args.train_len}")
    print(f"wrote {args.out / 'long_sequence.json'} and {args.out / 'long_sequence.png'}")
    if not ok:
        print("FAILED: parity, or the LION predictions differ between the exports or from eager (see above)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
