"""Benchmark: the recurrent form as standard LinearAttention nodes (--scan-op onnx) in onnxruntime on the CPU,
against the same form as the lion.SelectiveScan node (run through its local function) and the chunked form (issue 20).

A fourth file, "contrib kernel", is the standard-op file with its LinearAttention nodes moved to onnxruntime's
com.microsoft domain: onnxruntime 1.32 registers its CPU kernel for the op there only, and runs the ai.onnx op by
expanding the op's ONNX function (a Scan over tokens). It is not an export lion-export offers; it shows what the
same graph costs on a runtime with a kernel for the op.
Two scopes, each at L = 1k, 4k, 16k tokens, 1 and 2 threads, LION-S, fp32, batch 1:
    mixer : one LION pass alone on q, k, v (3 heads x 64) and per-token log decays: the lion.SelectiveScan node
            with its local function, the same node rewritten as two LinearAttention nodes
            (lion_export.export.linear_attention), and the chunked form traced by torch.onnx (chunk 64)
    block : one LION-S block at vit-tiny width (benchmarks/onnx_cpu.py's model: dim 192, 3 heads, patch 1, so
            L = side^2 + 1 = 1025, 4097, 16385) exported by export_onnx in the three ways
Per (scope, L, threads) one fresh child process builds the three exports' sessions and runs them interleaved,
--repeats rounds after a warm-up, and reports medians, so the ratios come from one machine state. Thread counts
get separate children: onnxruntime's idle worker threads spin after a run, and a 2-thread session's spinning
slowed the 1-thread runs after it by up to 3x when they shared a process.
Peak memory: one fresh child per (scope, export, L) at 1 thread, the kernel's peak-RSS counter reset before one
run (onnx_cpu.py's helpers), minus the RSS with the session and inputs in place. Denormals are flushed to zero
(see onnx_cpu.py for why).

    python benchmarks/linear_attention_cpu.py                       # the full grid (several minutes on 2 cores)
    python benchmarks/linear_attention_cpu.py --lengths 1024 4096   # a subset
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from lion_export.bench.memory import reset_peak_rss, status_kib
from onnx_cpu import build_model
from plotting import plot_latency_and_memory

HEADS, HEAD_DIM, CHUNK, OPSET = 3, 64, 64, 28
LENGTHS = [1024, 4096, 16384]
SCOPES = ("mixer", "block")
EXPORTS = ("standard op", "lion node", "chunked", "contrib kernel")
CONTRIB_DOMAIN = "com.microsoft"
THREADS = (1, 2)


def block_side(length: int) -> int:
    """The image side whose token count side^2 + 1 is nearest `length` above it."""
    return round((length - 1) ** 0.5)


def _mixer_inputs(length: int) -> dict:
    import torch
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(0)
    q, k = (torch.rand(1, HEADS, length, HEAD_DIM, generator=gen) for _ in range(2))
    v = torch.randn(1, HEADS, length, HEAD_DIM, generator=gen)
    a = F.logsigmoid(-torch.randn(1, HEADS, length, generator=gen))
    return {"q": q.numpy(), "k": k.numpy(), "v": v.numpy(), "log_decay": a.numpy()}


def _scan_node_model():
    """One lion.SelectiveScan node (q, k, v, log_decay -> y) with its local function, dynamic L."""
    from onnx import TensorProto, helper

    from lion_export.export.selective_scan import selective_scan_function
    from lion_export.scan_op import DOMAIN, DOMAIN_VERSION, INPUTS, OP_TYPE, node_attributes

    node = helper.make_node(OP_TYPE, list(INPUTS), ["y"], domain=DOMAIN, **node_attributes(True, 1e-6))
    shape = [1, HEADS, "L", HEAD_DIM]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ("q", "k", "v")]
    inputs.append(helper.make_tensor_value_info("log_decay", TensorProto.FLOAT, shape[:3]))
    graph = helper.make_graph([node], "mixer", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)])
    return helper.make_model(graph, functions=[selective_scan_function(OPSET)],
                             opset_imports=[helper.make_opsetid("", OPSET),
                                            helper.make_opsetid(DOMAIN, DOMAIN_VERSION)])


def save_contrib_twin(path: Path) -> None:
    """`path` with its LinearAttention nodes in the com.microsoft domain, saved beside it as "contrib kernel"."""
    import onnx
    from onnx import helper

    from lion_export.scan_op import is_linear_attention

    model = onnx.load(path)
    for node in model.graph.node:
        if is_linear_attention(node.domain, node.op_type):
            node.domain = CONTRIB_DOMAIN
    model.opset_import.append(helper.make_opsetid(CONTRIB_DOMAIN, 1))
    onnx.save(model, path.with_name(path.name.replace("standard op", "contrib kernel")))


def export_mixers(folder: Path) -> None:
    """The mixer alone, three ways (every L: the axis is dynamic)."""
    import onnx
    import torch

    from lion_export import lion_attention
    from lion_export.export.linear_attention import GATED, replace_selective_scans

    node = _scan_node_model()
    onnx.save(node, folder / "mixer_lion node.onnx")
    replace_selective_scans(node, HEADS, GATED)
    onnx.save(node, folder / "mixer_standard op.onnx")
    save_contrib_twin(folder / "mixer_standard op.onnx")

    class Chunked(torch.nn.Module):
        def forward(self, q, k, v, log_decay):
            return lion_attention(q, k, v, log_decay, form="chunked", chunk_size=CHUNK)

    example = tuple(torch.from_numpy(x) for x in _mixer_inputs(256).values())
    length = torch.export.Dim("L", min=2, max=2 ** 20)
    with warnings.catch_warnings():          # torch.onnx notes that the four inputs share the axis "L"
        warnings.simplefilter("ignore")
        torch.onnx.export(Chunked(), example, str(folder / "mixer_chunked.onnx"), dynamo=True, verbose=False,
                          input_names=["q", "k", "v", "log_decay"], output_names=["y"],
                          dynamic_shapes=({2: length}, {2: length}, {2: length}, {2: length}))


def export_blocks(folder: Path, lengths: list[int]) -> None:
    """The vit-tiny-width block at each L, three ways (a vision model's L is fixed by its image size)."""
    from lion_export.export import export_onnx

    for length in lengths:
        model = build_model(block_side(length))
        for name, form, scan_op in (("standard op", "recurrent", "onnx"), ("lion node", "recurrent", "lion"),
                                    ("chunked", "chunked", "lion")):
            export_onnx(model, folder / f"block_{name}_{length}.onnx", form=form, chunk_size=CHUNK, batch=2,
                        opset=OPSET, scan_op=scan_op)
        save_contrib_twin(folder / f"block_standard op_{length}.onnx")
        print(f"exported the block at L={block_side(length) ** 2 + 1}", flush=True)


def _session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.add_session_config_entry("session.set_denormal_as_zero", "1")
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _runner(scope: str, name: str, length: int, folder: Path, threads: int):
    """A zero-argument callable: one run of export `name` of `scope` at L = length."""
    import numpy as np

    if scope == "mixer":
        session, feed = _session(folder / f"mixer_{name}.onnx", threads), _mixer_inputs(length)
    else:
        side = block_side(length)
        session = _session(folder / f"block_{name}_{length}.onnx", threads)
        image = np.random.default_rng(0).standard_normal((1, 1, side, side)).astype(np.float32)
        feed = {session.get_inputs()[0].name: image}
    return lambda: session.run(None, feed)


def child_times(scope: str, length: int, threads: int, folder: Path, repeats: int) -> dict:
    """Fresh interpreter: every export at one (scope, L, threads), interleaved rounds; medians in seconds."""
    runs = {name: _runner(scope, name, length, folder, threads) for name in EXPORTS}
    for run in runs.values():
        run()                                                   # warm-up
    times: dict[str, list[float]] = {key: [] for key in runs}
    for _ in range(repeats):
        for key, run in runs.items():
            start = time.perf_counter()
            run()
            times[key].append(time.perf_counter() - start)
    return {key: statistics.median(t) for key, t in times.items()}


def child_memory(scope: str, name: str, length: int, folder: Path) -> dict:
    """Fresh interpreter: extra peak RSS (MiB) of one 1-thread run, session and inputs already in place."""
    run = _runner(scope, name, length, folder, 1)
    reset = reset_peak_rss()
    base = status_kib("VmRSS")
    run()
    peak = status_kib("VmHWM") if reset else None
    return {"peak_mib": None if peak is None else max(peak - base, 0) / 1024}


def in_child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="*", default=LENGTHS, help="token counts (default %(default)s)")
    parser.add_argument("--scopes", nargs="*", default=list(SCOPES), choices=SCOPES)
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds per point (default 5)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory children")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, scope, *rest = args.child
        result = (child_times(scope, int(rest[0]), int(rest[1]), Path(rest[2]), int(rest[3])) if kind == "times"
                  else child_memory(scope, rest[0], int(rest[1]), Path(rest[2])))
        print(json.dumps(result))
        return

    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="lion-linear-attention-bench-") as tmp:
        folder = Path(tmp)
        if "mixer" in args.scopes:
            export_mixers(folder)
        if "block" in args.scopes:
            export_blocks(folder, args.lengths)
        print(f"{'scope':>6} {'L':>6} {'export':>14} {'1 thread ms':>12} {'2 threads ms':>13} {'peak MiB':>9}",
              flush=True)
        for scope in args.scopes:
            for length in args.lengths:
                times = {threads: in_child("times", scope, str(length), str(threads), tmp, str(args.repeats))
                         for threads in THREADS}
                tokens = length if scope == "mixer" else block_side(length) ** 2 + 1
                for name in EXPORTS:
                    memory = None if args.no_memory else in_child("memory", scope, name, str(length), tmp)["peak_mib"]
                    rows.append({"scope": scope, "export": name, "series": f"{scope}: {name}", "L": tokens,
                                 "seconds": times[1][name], "seconds_2_threads": times[2][name],
                                 "peak_mib": memory})
                    print(f"{scope:>6} {tokens:>6} {name:>14} {times[1][name] * 1e3:>12.1f} "
                          f"{times[2][name] * 1e3:>13.1f} {'' if memory is None else f'{memory:9.1f}':>9}",
                          flush=True)
                print(f"   ({scope} L={tokens} done, {time.perf_counter() - started:.0f} s elapsed)", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    name = "linear_attention_cpu"
    (args.out / f"{name}.json").write_text(json.dumps({
        "setup": {"batch": 1, "heads": HEADS, "head_dim": HEAD_DIM, "variant": "LION-S", "chunk": CHUNK,
                  "opset": OPSET, "dtype": "float32", "threads": list(THREADS), "repeats": args.repeats,
                  "statistic": "median", "onnxruntime": __import__("onnxruntime").__version__},
        "rows": rows}, indent=1))
    if not args.no_memory:
        series = tuple(f"{scope}: {export}" for scope in args.scopes for export in EXPORTS)
        plot_latency_and_memory(rows, "series", series, "peak memory of one run (MiB)",
                                f"onnxruntime CPU, LION-S, {HEADS} heads x {HEAD_DIM}, fp32, 1 thread",
                                args.out / f"{name}.png")
    print(f"wrote {args.out / (name + '.json')}" + ("" if args.no_memory else f" and {name}.png"))


if __name__ == "__main__":
    main()
