"""Train a small LION vision transformer on scikit-learn's 8x8 handwritten digits, export it, and show that the
exported graphs classify the test set exactly as the PyTorch model does.

    python examples/digits.py                                  # LION-S: ~1 min on a CPU core, 97.50% test accuracy
    python examples/digits.py --mask lit --out runs/lit        # LION-LIT (or --mask decay: LION-D)
    python examples/digits.py --checkpoint examples/lion_s_digits.pt   # no training: export + verify the bundled model

Steps, each printed as it happens: load the digits (bundled with scikit-learn, no download; 1437 training and
360 test images, a fixed stratified split) -> train (AdamW, one-cycle learning rate; the Triton kernels in the
chunked form when CUDA is present, the PyTorch parallel form otherwise: at 17 tokens it is the cheapest) ->
save `digits.pt` (lion_export.save_checkpoint) -> export `digits_chunked.onnx` and `digits_recurrent.onnx` ->
verify parity (lion_export.verify.verify_onnx, float64 eager reference) -> quantize each export to INT8
(`digits_<form>.int8.onnx`, lion_export.quantize, calibrated on 256 training digits) -> run the whole test set
through onnxruntime and print eager and onnxruntime accuracy side by side with the number of predictions that
differ from eager PyTorch, the INT8 files in rows of their own -> build a TensorRT engine where lion_export.engine
and TensorRT are present. Every file goes to --out (default: examples/out/digits/, ignored by git). Exit status: 0
when parity holds and every prediction of the float exports agrees, 1 when not, 2 on bad input. The INT8 rows are
not held to agreement: quantization may change a few predictions (the bundled model's INT8 files change none).

The model: 8x8 one-channel images, patch 2 (16 patches + the class token = 17 tokens), dim 64, 2 blocks of 4 heads,
MLP ratio 2, a learnt position embedding (LION-LIT has no other notion of position): 69,714 parameters, 291 KB on
disk. Chunk size 8 for the chunked export, so its 17 tokens span two full chunks and a partial third one.

The bundled examples/lion_s_digits.pt was made by this script with its defaults (training on a CPU is deterministic:
97.50% each time):
    python examples/digits.py && cp examples/out/digits/digits.pt examples/lion_s_digits.pt
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np

EXPORT_FORMS = ("chunked", "recurrent")
DEFAULT_OUT = Path(__file__).resolve().parent / "out" / "digits"   # examples/out/ is in .gitignore
EXPORT_CHUNK = 8
INPUT_NAME = "images"
CALIBRATION_DIGITS, CALIBRATION_BATCH = 256, 32        # INT8 scales from the first 256 training digits


def fail(message: str, status: int = 2) -> NoReturn:
    """One line on stderr and the exit status (2: bad input, 1: a failed check)."""
    print(f"digits.py: error: {message}", file=sys.stderr)
    raise SystemExit(status)


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line, like every other bad input."""

    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see --help)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = OneLineParser(description="Train a LION ViT on 8x8 digits, export it to ONNX, compare predictions.")
    parser.add_argument("--mask", default="selective", choices=("lit", "decay", "selective"),
                        help="LION variant: lit (LION-LIT), decay (LION-D), selective (LION-S, default)")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs (default 30)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=5e-3, help="peak learning rate (default 5e-3)")
    parser.add_argument("--dim", type=int, default=64, help="model width (default 64)")
    parser.add_argument("--depth", type=int, default=2, help="blocks (default 2)")
    parser.add_argument("--heads", type=int, default=4, help="attention heads (default 4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads for PyTorch (default 1: a 64-wide model's ops are too small to split, and "
                             "on a busy machine extra threads spin-wait: 2 threads measured 5-50x slower per step here)")
    parser.add_argument("--checkpoint", type=Path,
                        help="skip training: export and check this lion-export checkpoint instead")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="directory for every output (default: examples/out/digits)")
    args = parser.parse_args(argv)
    for name in ("epochs", "batch_size", "dim", "depth", "heads"):
        if getattr(args, name) <= 0:
            fail(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    if args.threads <= 0:
        fail(f"--threads must be a positive integer, got {args.threads}")
    if not args.lr > 0:
        fail(f"--lr must be positive, got {args.lr}")
    if args.dim % args.heads:
        fail(f"--dim ({args.dim}) must be a multiple of --heads ({args.heads})")
    if args.checkpoint is not None and not args.checkpoint.is_file():
        fail(f"--checkpoint {args.checkpoint}: no such file")
    if args.out.exists() and not args.out.is_dir():
        fail(f"--out {args.out} is not a directory")
    return args


@dataclass
class Digits:
    """The digits split: images (N, 1, 8, 8) float32, standardised with the training set's mean and std."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


def load_data() -> Digits:
    """scikit-learn's bundled digits, a fixed stratified 80/20 split (the same test set on every run)."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        fail("this example needs scikit-learn: pip install 'lion-export[examples]'")
    data = load_digits()
    images = data.images.astype(np.float32)[:, None]                        # (1797, 1, 8, 8), values 0..16
    train_x, test_x, train_y, test_y = train_test_split(images, data.target.astype(np.int64), test_size=0.2,
                                                        random_state=0, stratify=data.target)
    mean, std = train_x.mean(), train_x.std()
    return Digits((train_x - mean) / std, train_y, (test_x - mean) / std, test_y)


def build_model(args: argparse.Namespace):
    from lion_export import create_model

    return create_model("vit-tiny", mask=args.mask, img_size=8, patch_size=2, in_chans=1, num_classes=10,
                        dim=args.dim, depth=args.depth, num_heads=args.heads, mlp_ratio=2.0,
                        chunk_size=EXPORT_CHUNK)


class EpochProgress:
    """A rich progress bar per epoch on a terminal; otherwise one line per epoch with the elapsed time."""

    def __init__(self, epochs: int, steps: int) -> None:
        self.epochs, self.steps = epochs, steps
        self.start = time.perf_counter()
        self.bar = None
        if sys.stdout.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), TextColumn("{task.fields[status]}"), transient=False)
            self.bar.start()

    def begin(self, epoch: int) -> None:
        if self.bar is not None:
            self.task = self.bar.add_task(f"epoch {epoch:>3}/{self.epochs}", total=self.steps, status="")

    def step(self, loss: float) -> None:
        if self.bar is not None:
            self.bar.update(self.task, advance=1, status=f"loss {loss:.3f}")

    def end(self, epoch: int, loss: float, train_acc: float) -> None:
        status = f"loss {loss:.3f}  train {train_acc:.2%}"
        if self.bar is not None:
            self.bar.update(self.task, status=status)
        else:
            print(f"epoch {epoch:>3}/{self.epochs}  {status}  ({time.perf_counter() - self.start:.1f} s)",
                  flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def train(model, data: Digits, args: argparse.Namespace, device: str) -> float:
    """Train in place; returns the wall-clock seconds. Cross-entropy with light label smoothing, AdamW, one-cycle LR."""
    import torch
    import torch.nn.functional as F

    from lion_export import set_form

    # CUDA: the chunked form runs on the fused Triton kernels (forward and backward); CPU: the PyTorch parallel
    # form, the cheapest at 17 tokens. The forms are exactly equivalent, so this changes speed, not the model.
    set_form(model, "chunked" if device == "cuda" else "parallel")
    model.to(device).train()
    generator = torch.Generator().manual_seed(args.seed)
    images = torch.from_numpy(data.train_x)
    labels = torch.from_numpy(data.train_y)
    steps = math.ceil(len(images) / args.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=args.epochs * steps,
                                                   pct_start=0.15)
    progress = EpochProgress(args.epochs, steps)
    start = time.perf_counter()
    try:
        for epoch in range(1, args.epochs + 1):
            progress.begin(epoch)
            order = torch.randperm(len(images), generator=generator)
            total_loss, correct = 0.0, 0
            for index in range(steps):
                batch = order[index * args.batch_size:(index + 1) * args.batch_size]
                x = images[batch].to(device)
                y = labels[batch].to(device)
                logits = model(x)
                loss = F.cross_entropy(logits, y, label_smoothing=0.05)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                total_loss += loss.item() * len(batch)
                correct += (logits.argmax(-1) == y).sum().item()
                progress.step(loss.item())
            progress.end(epoch, total_loss / len(images), correct / len(images))
    finally:
        progress.close()
    set_form(model.cpu().eval(), "parallel")
    return time.perf_counter() - start


def eager_predictions(model, images: np.ndarray) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return model(torch.from_numpy(images)).argmax(-1).numpy()


def onnxruntime_predictions(onnx_path: Path, images: np.ndarray) -> np.ndarray:
    from lion_export.runners import OnnxRuntimeRunner

    with OnnxRuntimeRunner(onnx_path) as runner:
        (logits,) = runner.infer({INPUT_NAME: images}).values()
    return logits.argmax(-1)


def quantize_step(onnx_path: Path, data: Digits) -> Path:
    """The INT8 file of `onnx_path` (lion_export.quantize), calibrated on training digits, never on test ones."""
    from functools import partial

    from lion_export.quantize import quantize_onnx
    from lion_export.quantize.calibration import feeds_from_callable

    def batches():
        return ({INPUT_NAME: data.train_x[start:start + CALIBRATION_BATCH]}
                for start in range(0, CALIBRATION_DIGITS, CALIBRATION_BATCH))

    result = quantize_onnx(onnx_path, onnx_path.with_suffix(".int8.onnx"), partial(feeds_from_callable, batches))
    print(f"quantized {onnx_path.name} to {result.path.name}: {result.layers} linear layers INT8, calibrated on "
          f"{result.calibration.split(' from ')[0]} of training digits", flush=True)
    return result.path


def tensorrt_step(onnx_path: Path, images: np.ndarray, labels: np.ndarray, eager: np.ndarray) -> bool:
    """Build a TensorRT engine from `onnx_path` (lion_export.engine) and, where a GPU can run it, classify the test
    set with it. Thin and optional: an absent lion_export.engine, TensorRT or GPU is one line and not a failure.
    Returns False only when a present TensorRT failed or the engine's predictions differ from eager PyTorch's."""
    try:
        from lion_export.engine.backend import BackendError
        from lion_export.engine.build import build_engine
        from lion_export.runners.trt_engine import RunnerUnavailable, TensorRTRunner
    except ImportError:
        print("TensorRT: skipped (lion_export.engine is not in this installation)")
        return True
    engine_path = onnx_path.with_suffix(".engine")
    try:
        report = build_engine(onnx_path, engine_path)
    except BackendError as error:
        print(f"TensorRT: skipped ({' '.join(str(error).split())})")
        return True
    except Exception as error:  # noqa: BLE001 - the builder's own errors: reported, and the run fails
        print(f"TensorRT: building {engine_path.name} failed: {type(error).__name__}: {' '.join(str(error).split())}")
        return False
    print(f"TensorRT: built {engine_path}")
    for warning in report.warnings:          # e.g. a plugin engine built by TensorRT-RTX
        print(f"TensorRT: warning: {warning}")
    try:
        with TensorRTRunner(engine_path) as runner:
            (logits,) = runner.infer({INPUT_NAME: images}).values()
    except RunnerUnavailable as error:
        print(f"TensorRT: engine not run ({' '.join(str(error).split())})")
        return True
    predictions = logits.argmax(-1)
    differing = int((predictions != eager).sum())
    print(f"TensorRT engine {engine_path.name}: accuracy {(predictions == labels).mean():.2%}, "
          f"{differing} predictions differ from eager PyTorch")
    return differing == 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from lion_export import CheckpointError, load_checkpoint, save_checkpoint
    from lion_export.export import export_onnx
    from lion_export.verify import verify_onnx
    from lion_export.variants import get_variant

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    data = load_data()
    if args.checkpoint is not None:
        try:
            model = load_checkpoint(args.checkpoint)
        except CheckpointError as error:
            fail(str(error))
        checkpoint_path = args.checkpoint
        print(f"loaded {args.checkpoint} ({get_variant(model.config.mask).display_name}); no training")
    else:
        torch.manual_seed(args.seed)
        model = build_model(args)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        params = sum(p.numel() for p in model.parameters())
        print(f"training {get_variant(args.mask).display_name} ({params:,} parameters, 17 tokens) on "
              f"{len(data.train_x)} digits for {args.epochs} epochs on {device} "
              f"({'Triton kernels, chunked form' if device == 'cuda' else 'PyTorch, parallel form'}, "
              f"{torch.get_num_threads()} thread(s))", flush=True)
        seconds = train(model, data, args, device)
        print(f"trained in {seconds:.1f} s")
        checkpoint_path = save_checkpoint(model, args.out / "digits.pt")
        print(f"saved {checkpoint_path}")
    if model.config.kind != "vision" or (model.config.in_chans, model.config.img_size) != (1, 8):
        fail(f"{checkpoint_path}: not a digits model (needs a vision model on 1-channel 8x8 images)")
    model.eval()
    eager = eager_predictions(model, data.test_x)
    eager_accuracy = float((eager == data.test_y).mean())

    rows, ok = [], True
    for form in EXPORT_FORMS:
        onnx_path = args.out / f"digits_{form}.onnx"
        start = time.perf_counter()
        export_onnx(model, onnx_path, form=form, chunk_size=EXPORT_CHUNK, checkpoint_path=checkpoint_path)
        report = verify_onnx(model, onnx_path, progress=sys.stdout.isatty())
        worst = max((o.max_abs_error for c in report.cases for o in c.outputs), default=float("nan"))
        print(f"exported {onnx_path.name} and verified it in {time.perf_counter() - start:.1f} s: parity "
              f"{'PASSED' if report.passed else 'FAILED'} (max |error| {worst:.1e} over "
              f"{len(report.cases)} cases)", flush=True)
        predictions = onnxruntime_predictions(onnx_path, data.test_x)
        differing = int((predictions != eager).sum())
        rows.append((onnx_path.name, float((predictions == data.test_y).mean()), differing))
        ok &= report.passed and differing == 0
    for form in EXPORT_FORMS:
        int8_path = quantize_step(args.out / f"digits_{form}.onnx", data)
        predictions = onnxruntime_predictions(int8_path, data.test_x)
        rows.append((int8_path.name, float((predictions == data.test_y).mean()), int((predictions != eager).sum())))

    print(f"\ntest set: {len(data.test_y)} digits")
    print(f"{'graph':<27} {'eager PyTorch':>14} {'onnxruntime':>12} {'differing predictions':>22}")
    for name, accuracy, differing in rows:
        print(f"{name:<27} {eager_accuracy:>14.2%} {accuracy:>12.2%} {differing:>22}")
    ok &= tensorrt_step(args.out / "digits_recurrent.onnx", data.test_x, data.test_y, eager)
    if not ok:
        print("FAILED: parity or predictions differ (see above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
