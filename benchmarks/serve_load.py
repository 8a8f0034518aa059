"""Benchmark: a real Triton Inference Server under load (issue 18 part 5), against in-process `lion_export.load`.

Models (both exported in --form, default chunked, the export's default):
    digits    the bundled examples/lion_s_digits.pt (8x8 one-channel images, 17 tokens, dim 64, 2 blocks; chunk 8,
              as examples/digits.py exports it), or an .onnx file of it given with --digits;
    vit-tiny  the vit-tiny preset's width (dim 192, 3 heads, 12 blocks, LION-S), random weights, --image-size px
              images (default 64: 4x4 patches of 16, 17 tokens like digits, so one request costs milliseconds,
              not the ~50 ms of 224 px on one of these cores, and a run of a few seconds holds many requests).
Served: `write_repository` (python backend: model.py runs `lion_export.load` on the .onnx file), max_batch_size
--max-batch-size, once with dynamic batching off and once on (--max-queue-delay-us, default 0: a batch is what
queued while the model was busy), one instance; `TritonServer` starts the real tritonserver of the nvidia-pytriton
wheel on 127.0.0.1. onnxruntime runs on --threads threads (default 1) in the server and in process alike: its
default, a spinning thread per core, fights the server's and the clients' threads for the same 2 cores (measured
here in process alone: the digits file at batch 16 took 1.1 ms per image on 2 threads, 0.31 ms on 1).
Clients (load_clients.py, --client): 1, 4 and 16 clients sending one image per request, back to back, for
--duration seconds after --warmup seconds unmeasured: `threads` (the default), a thread each with its own
tritonclient HTTP connection; `async-grpc` / `async-http`, one asyncio tritonclient (grpc.aio / http.aio, binary
tensors) in one event loop keeping that many requests in flight, as perf_analyzer's concurrency does, at less CPU
per request. Every response is checked against the in-process output of the same image (rtol = atol = 1e-4).
In process: `lion_export.load` on the same file with the same settings as model.py, one image at a time for
--duration seconds (p50 / p99 latency, requests/s), then batches of the largest client count (images/s: what
batching can gain without a server).
Both servers run at once and the points interleave (per model: in process, then each client count with batching
off, then on), so both settings and the in-process figures meet the same machine: a shared machine's load drifts
within minutes. The one-client latency goal is judged head to head: 5 alternating turns of --duration / 5 seconds
each in process, served with batching off and on.
Recorded per point: requests/s, p50 / p99 latency, requests sent, right, wrong, failed (error responses) and lost
(no response); from Triton's statistics, the mean batch the model ran and, per request, the mean time queued and
in model.py's `execute`; the CPU seconds the client threads, the loaded server and the idle one took; the
1-minute load average before the point (other work on the machine shows there).

    python benchmarks/serve_load.py            # 12 points of 20 s (~8 min on 2 cores): results/serve_load.json, .png
    python benchmarks/serve_load.py --quick    # 1 and 4 clients, 2 s each: results/serve_load_quick.json, .png
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np
from load_clients import AsyncOpen, Call, Connect, ErrorResponse, LoadResult, run_load, run_load_async
from plotting import plot_load

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "examples" / "lion_s_digits.pt"
DIGITS_CHUNK = 8                     # examples/digits.py's chunk size: 17 tokens span two full chunks and a third
VIT_WIDTH = {"dim": 192, "depth": 12, "num_heads": 3}       # the vit-tiny preset's, said here so the JSON records it
MODELS = ("digits", "vit_tiny")
ROUNDS = 5                           # turns of the one-client head-to-head
CASES = 16                           # distinct images per model, sent round-robin
BATCHING = ("off", "on")
CLIENTS = ("threads", "async-grpc", "async-http")
GRPC_NO_RESPONSE = {"StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED", "StatusCode.CANCELLED"}
TIMEOUT_S = 30.0
GOAL_REQUESTS, GOAL_SPEEDUP, GOAL_LATENCY_RATIO = 10_000, 2.0, 1.5
MODES = {"full": {"clients": (1, 4, 16), "duration": 20.0, "warmup": 2.0},
         "quick": {"clients": (1, 4), "duration": 2.0, "warmup": 0.5}}


def fail(message: str) -> NoReturn:
    print(f"serve_load.py: error: {message}", file=sys.stderr)
    raise SystemExit(2)


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see --help)")


@dataclass(frozen=True)
class ServedModel:
    """One model of the benchmark: its file, its one input and output, and the images sent with their answers."""

    name: str
    path: Path
    description: str
    input_name: str
    output_name: str
    cases: tuple[tuple[np.ndarray, np.ndarray], ...]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 and 4 clients, 2 s per point")
    parser.add_argument("--clients", help="comma-separated client counts (default 1,4,16; quick 1,4)")
    parser.add_argument("--duration", type=float, help="seconds measured per point (default 20; quick 2)")
    parser.add_argument("--warmup", type=float, help="unmeasured seconds before each point (default 2; quick 0.5)")
    parser.add_argument("--models", default="digits,vit_tiny", help="comma-separated, from digits,vit_tiny")
    parser.add_argument("--digits", type=Path, default=DIGITS, help="the digits checkpoint, or an .onnx export of it")
    parser.add_argument("--image-size", type=int, default=64, help="vit-tiny image side in px (default 64)")
    parser.add_argument("--form", default="chunked", choices=("chunked", "recurrent", "parallel"))
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--max-queue-delay-us", type=int, default=0)
    parser.add_argument("--instances", type=int, default=1, help="model instances (default 1)")
    parser.add_argument("--client", default="threads", choices=CLIENTS,
                        help="the load generator (default threads: see the docstring)")
    parser.add_argument("--threads", type=int, default=1,
                        help="onnxruntime threads, served and in process alike (default 1: see the docstring)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    mode = MODES["quick" if args.quick else "full"]
    try:
        args.clients = tuple(int(c) for c in args.clients.split(",")) if args.clients else mode["clients"]
    except ValueError:
        fail(f"--clients must be comma-separated integers, got {args.clients!r}")
    args.duration = mode["duration"] if args.duration is None else args.duration
    args.warmup = mode["warmup"] if args.warmup is None else args.warmup
    if not args.clients or min(args.clients) < 1:
        fail(f"--clients must be positive integers, got {args.clients}")
    if args.duration <= 0 or args.warmup < 0:
        fail("--duration must be positive and --warmup >= 0")
    for name in ("image_size", "max_batch_size", "instances", "threads"):
        if getattr(args, name) < 1:
            fail(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    args.models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    unknown = [m for m in args.models if m not in MODELS]
    if unknown or not args.models:
        fail(f"--models: unknown {unknown or 'empty list'}; choose from {', '.join(MODELS)}")
    if args.image_size % 16:
        fail(f"--image-size must be a multiple of the patch size 16, got {args.image_size}")
    if not args.digits.is_file():
        fail(f"--digits {args.digits}: no such file")
    return args


def export_models(args: argparse.Namespace, folder: Path) -> list[tuple[str, Path, str]]:
    """(name, .onnx path, description) of each model in --models, exported into `folder` (digits: taken as it is
    when --digits is an .onnx file)."""
    import torch

    from lion_export import create_model, load_checkpoint
    from lion_export.export import export_onnx

    exported = []
    if "digits" in args.models:
        digits = args.digits
        if digits.suffix != ".onnx":
            digits = export_onnx(load_checkpoint(args.digits), folder / "digits.onnx", form=args.form,
                                 chunk_size=DIGITS_CHUNK)
        exported.append(("digits", digits, f"{args.digits.name}, {args.form} form, 8x8 images, 17 tokens"))
    if "vit_tiny" in args.models:
        torch.manual_seed(0)
        vit = create_model("vit-tiny", **VIT_WIDTH, mask="selective", img_size=args.image_size, num_classes=10)
        tokens = (args.image_size // 16) ** 2 + 1
        exported.append(("vit_tiny", export_onnx(vit.eval(), folder / "vit_tiny.onnx", form=args.form),
                         f"vit-tiny width (dim 192, 3 heads, 12 blocks, LION-S), random weights, {args.form} form, "
                         f"{args.image_size}x{args.image_size} images, {tokens} tokens"))
    return exported


def one_at_a_time(session, images: list[np.ndarray], seconds: float) -> list[float]:
    """Milliseconds of each in-process call, one image after the other, for `seconds`."""
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        began = time.perf_counter()
        session(images[len(times) % len(images)])
        times.append((time.perf_counter() - began) * 1e3)
    return times


def in_process(session, name: str, path: Path, description: str,
               args: argparse.Namespace) -> tuple[ServedModel, dict]:
    """The model's cases (their expected outputs from the open `lion_export.load` session) and its in-process
    figures: one image at a time, then batches of the largest client count."""
    (image,), (output,) = session.inputs, session.outputs
    rng = np.random.default_rng(0)
    images = [rng.standard_normal((1, *image.shape[1:])).astype(image.dtype) for _ in range(CASES)]
    cases = tuple((x, session(x)[output.name]) for x in images)
    served = ServedModel(name, path, description, image.name, output.name, cases)
    for x in images:                                   # warm-up: every image once
        session(x)
    ms = np.array(one_at_a_time(session, images, args.duration))
    batch = max(args.clients)
    stacked = np.concatenate([images[i % CASES] for i in range(batch)])
    session(stacked)
    runs, began = 0, time.perf_counter()
    while runs < 3 or time.perf_counter() - began < args.duration / 2:
        session(stacked)
        runs += 1
    batched = runs * batch / (time.perf_counter() - began)
    return served, {"requests": len(ms), "req_per_s": len(ms) / ms.sum() * 1e3, "p50_ms": float(np.median(ms)),
                    "p99_ms": float(np.percentile(ms, 99)), "batch": batch, "batched_images_per_s": batched,
                    "providers": list(session.providers)}


def head_to_head(session, servers: dict, model: ServedModel, args: argparse.Namespace) -> dict:
    """One client's latency served (batching off, on) and in process, in ROUNDS alternating turns of
    --duration / ROUNDS seconds each: the latency goal compares these p50s, so drift in the machine's load between
    two long runs cannot decide it."""
    turn = args.duration / ROUNDS
    images = [image for image, _ in model.cases]
    latencies: dict[str, list[float]] = {"in_process": [], **{b: [] for b in servers}}
    for _ in range(ROUNDS):
        latencies["in_process"] += one_at_a_time(session, images, turn)
        for batching, server in servers.items():
            result = send_load(server, model, 1, turn, args.client)
            if result.right != result.sent:
                raise RuntimeError(f"{model.name}: {result.sent - result.right} of {result.sent} requests went wrong "
                                   f"in the head-to-head run: {list(result.messages)}")
            latencies[batching] += result.latencies_ms
    return {"rounds": ROUNDS, "turn_s": turn, **{f"{k}_p50_ms": float(np.median(v)) for k, v in latencies.items()},
            **{f"{k}_requests": len(v) for k, v in latencies.items()}}


def infer_input(client_module, model: ServedModel, image: np.ndarray):
    """The request's one input, built with `client_module` (tritonclient.http[.aio] or .grpc[.aio]); binary
    tensor data, which the HTTP modules take as an option and gRPC always uses."""
    from tritonclient.utils import np_to_triton_dtype

    request = client_module.InferInput(model.input_name, list(image.shape), np_to_triton_dtype(image.dtype))
    options = {} if "grpc" in client_module.__name__ else {"binary_data": True}
    request.set_data_from_numpy(image, **options)
    return request


def fate_of(error, protocol: str, no_response: tuple = ()) -> Exception:
    """The exception load_clients counts for a tritonclient error: ConnectionError (lost) when nothing came back
    (the client raised it itself, status None, or a status in `no_response`), ErrorResponse (failed) otherwise."""
    if error.status() is None or error.status() in no_response:
        return ConnectionError(f"{error.status() or protocol}: {error.message()}")
    return ErrorResponse(f"{protocol} {error.status()}: {error.message()}")


def http_connect(url: str, model: ServedModel, timeout_s: float) -> Connect:
    """A Connect for load_clients: one tritonclient HTTP client (one keep-alive connection) per call."""
    import tritonclient.http as http
    from tritonclient.utils import InferenceServerException

    def connect() -> Call:
        client = http.InferenceServerClient(url, connection_timeout=timeout_s, network_timeout=timeout_s)
        wanted = [http.InferRequestedOutput(model.output_name, binary_data=True)]

        def call(image: np.ndarray) -> np.ndarray:
            try:
                result = client.infer(model.name, [infer_input(http, model, image)], outputs=wanted)
            except InferenceServerException as error:
                raise fate_of(error, "HTTP") from None
            return result.as_numpy(model.output_name)
        return call
    return connect


def grpc_open(url: str, model: ServedModel, timeout_s: float) -> AsyncOpen:
    """An AsyncOpen for load_clients: one tritonclient grpc.aio client (one channel) for every request in flight.
    gRPC statuses that mean nothing came back (unavailable, deadline exceeded, cancelled) are lost requests."""
    import tritonclient.grpc.aio as grpc
    from tritonclient.utils import InferenceServerException

    @asynccontextmanager
    async def open_client():
        client = grpc.InferenceServerClient(url)
        wanted = [grpc.InferRequestedOutput(model.output_name)]

        async def call(image: np.ndarray) -> np.ndarray:
            try:
                result = await client.infer(model.name, [infer_input(grpc, model, image)], outputs=wanted,
                                            client_timeout=timeout_s)
            except InferenceServerException as error:
                raise fate_of(error, "gRPC", GRPC_NO_RESPONSE) from None
            return result.as_numpy(model.output_name)
        try:
            yield call
        finally:
            await client.close()
    return open_client


def http_aio_open(url: str, model: ServedModel, timeout_s: float, clients: int) -> AsyncOpen:
    """An AsyncOpen for load_clients: one tritonclient http.aio client, its pool sized for `clients` keep-alive
    connections in flight at once."""
    import tritonclient.http.aio as http
    from tritonclient.utils import InferenceServerException

    @asynccontextmanager
    async def open_client():
        client = http.InferenceServerClient(url, conn_limit=clients, conn_timeout=timeout_s)
        wanted = [http.InferRequestedOutput(model.output_name, binary_data=True)]

        async def call(image: np.ndarray) -> np.ndarray:
            try:
                result = await asyncio.wait_for(
                    client.infer(model.name, [infer_input(http, model, image)], outputs=wanted), timeout_s)
            except InferenceServerException as error:
                raise fate_of(error, "HTTP") from None
            return result.as_numpy(model.output_name)
        try:
            yield call
        finally:
            await client.close()
    return open_client


def send_load(server, model: ServedModel, clients: int, seconds: float, client: str) -> LoadResult:
    """`clients` clients of the --client kind against `server` for `seconds` (load_clients.py counts the fates)."""
    if client == "threads":
        return run_load(http_connect(server.http_url, model, TIMEOUT_S), model.cases, clients, seconds)
    opener = (grpc_open(server.grpc_url, model, TIMEOUT_S) if client == "async-grpc"
              else http_aio_open(server.http_url, model, TIMEOUT_S, clients))
    return run_load_async(opener, model.cases, clients, seconds)


def model_statistics(url: str, model: str) -> dict[str, float]:
    """Triton's own counters for `model`: requests, executions (batches run) and the time they spent queued and in
    the model's `execute`, in nanoseconds (differences of two readings describe the run between them)."""
    import tritonclient.http as http

    client = http.InferenceServerClient(url)
    try:
        (stats,) = client.get_inference_statistics(model)["model_stats"]
    finally:
        client.close()
    return {"inferences": stats["inference_count"], "executions": stats["execution_count"],
            "queue_ns": stats["inference_stats"]["queue"]["ns"],
            "execute_ns": stats["inference_stats"]["compute_infer"]["ns"]}


def server_side(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """What the server says of a run: the mean batch its model ran, and per request, the mean time it waited in the
    queue and the mean time of the `execute` call it was part of (model.py's work on the whole batch; Triton adds
    a batch's time to each of its requests)."""
    delta = {k: after[k] - before[k] for k in before}
    requests = max(delta["inferences"], 1)
    return {"mean_batch": delta["inferences"] / max(delta["executions"], 1),
            "queue_ms": delta["queue_ns"] / requests / 1e6, "execute_ms": delta["execute_ns"] / requests / 1e6}


def session_cpu_seconds(session_id: int) -> float:
    """User + system CPU seconds of the live processes in a session (the server and its python backend stubs)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue                                    # a process that ended meanwhile
        if int(fields[3]) == session_id:
            total += int(fields[11]) + int(fields[12])
    return total / tick


def start_server(batching: str, exported: list[tuple[str, Path, str]], args: argparse.Namespace, folder: Path,
                 stack: ExitStack):
    """A ready server (stopped when `stack` closes) on a new repository of every model, batching on or off."""
    from lion_export.serving.repository import write_repository
    from lion_export.serving.server import TritonServer

    repo = folder / f"repository_batching_{batching}"
    write_repository([path for _, path, _ in exported], repo, backend="python", max_batch_size=args.max_batch_size,
                     dynamic_batching=batching == "on", max_queue_delay_us=args.max_queue_delay_us,
                     instances=args.instances, model_names=[name for name, _, _ in exported], threads=args.threads)
    server = stack.enter_context(TritonServer(repo, work_dir=folder / f"server_{batching}"))
    unready = [f"{s.name}: {s.state} {s.reason}" for s in server.model_states() if not s.ready]
    if unready:
        raise RuntimeError(f"models not ready: {'; '.join(unready)}\n{server.log_tail()}")
    return server


def load_point(servers: dict, batching: str, model: ServedModel, clients: int, args: argparse.Namespace) -> dict:
    """One point: warm-up, then `clients` clients for --duration seconds against `servers[batching]`."""
    server = servers[batching]
    if args.warmup:
        send_load(server, model, clients, args.warmup, args.client)
    load = os.getloadavg()[0]
    cpu = {b: session_cpu_seconds(s.pid) for b, s in servers.items()}
    stats = model_statistics(server.http_url, model.name)
    result = send_load(server, model, clients, args.duration, args.client)
    spent = {b: round(session_cpu_seconds(s.pid) - cpu[b], 3) for b, s in servers.items()}
    return {"model": model.name, "batching": batching, **result.summary(),
            **server_side(stats, model_statistics(server.http_url, model.name)),
            "server_cpu_s": spent.pop(batching), "idle_server_cpu_s": sum(spent.values()), "load_1m_before": load}


def measure(exported: list[tuple[str, Path, str]], args: argparse.Namespace, folder: Path,
            step) -> tuple[list[ServedModel], dict[str, dict], list[dict]]:
    """Both servers up at once, then per model: in process, one client head to head, and each client count with
    batching off then on.
    Interleaved, so the two settings (and the in-process figures) meet the same machine: a shared machine's load
    drifts within minutes."""
    import lion_export

    models, baselines, points = [], {}, []
    with ExitStack() as stack:
        servers = {}
        for batching in BATCHING:
            step(f"starting a server, batching {batching}")
            servers[batching] = start_server(batching, exported, args, folder, stack)
        for name, path, description in exported:
            step(f"{name} in process")
            with lion_export.load(path, threads=args.threads) as session:
                model, baselines[name] = in_process(session, name, path, description, args)
                step(f"{name}, 1 client, served and in process in turns")
                baselines[name]["head_to_head"] = head_to_head(session, servers, model, args)
            models.append(model)
            for clients in args.clients:
                for batching in BATCHING:
                    step(f"{name}, batching {batching}, {clients} client(s)")
                    points.append(load_point(servers, batching, model, clients, args))
    return models, baselines, points


def goals(points: list[dict], baselines: dict[str, dict], clients: tuple[int, ...]) -> list[str]:
    """The issue's three goals, each a line saying met / MISSED with its figures."""
    lines = []
    top = max(clients)
    at_top = [p for p in points if p["clients"] == top]
    sent = sum(p["sent"] for p in at_top)
    bad = {k: sum(p[k] for p in at_top) for k in ("failed", "wrong", "lost")}
    ok = top >= 16 and sent >= GOAL_REQUESTS and not any(bad.values())
    lines.append(f"{'met' if ok else 'MISSED'}: 0 failed or lost over >= {GOAL_REQUESTS} requests at 16 clients "
                 f"({sent} requests at {top} clients: {bad['failed']} failed, {bad['wrong']} wrong, "
                 f"{bad['lost']} lost)")
    for model in baselines:
        rate = {p["batching"]: p["req_per_s"] for p in at_top if p["model"] == model}
        if set(rate) == set(BATCHING):
            gain = rate["on"] / rate["off"] if rate["off"] else float("inf")
            alone = baselines[model]
            lines.append(f"{'met' if gain >= GOAL_SPEEDUP and top >= 16 else 'MISSED'}: {model}, dynamic batching "
                         f">= {GOAL_SPEEDUP:g}x no batching at 16 clients ({rate['on']:.0f} vs {rate['off']:.0f} "
                         f"req/s at {top} clients: {gain:.2f}x; in process, batches of {alone['batch']} ran "
                         f"{alone['batched_images_per_s'] / alone['req_per_s']:.2f}x the images/s of one at a time)")
    if "vit_tiny" in baselines:
        turns = baselines["vit_tiny"]["head_to_head"]
        alone = turns["in_process_p50_ms"]
        for batching in BATCHING:
            ratio = turns[f"{batching}_p50_ms"] / alone
            lines.append(f"{'met' if ratio <= GOAL_LATENCY_RATIO else 'MISSED'}: vit_tiny at 1 client (batching "
                         f"{batching}), served p50 within {GOAL_LATENCY_RATIO:g}x in-process, in alternating turns "
                         f"({turns[f'{batching}_p50_ms']:.2f} vs {alone:.2f} ms: {ratio:.2f}x)")
    return lines


def table(points: list[dict], baselines: dict[str, dict]) -> list[str]:
    """The points and the in-process figures, one line each (batch, queue, execute: Triton's statistics)."""
    lines = [f"{'model':<9} {'batching':<9} {'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'sent':>7} "
             f"{'failed':>6} {'wrong':>6} {'lost':>5} {'batch':>6} {'queue ms':>9} {'execute ms':>10}"]
    for p in points:
        lines.append(f"{p['model']:<9} {p['batching']:<9} {p['clients']:>7} {p['req_per_s']:>8.1f} "
                     f"{p['p50_ms']:>8.2f} {p['p99_ms']:>8.2f} {p['sent']:>7} {p['failed']:>6} {p['wrong']:>6} "
                     f"{p['lost']:>5} {p['mean_batch']:>6.2f} {p['queue_ms']:>9.2f} {p['execute_ms']:>10.2f}")
    for name, b in baselines.items():
        lines.append(f"{name:<9} {'in-proc':<9} {1:>7} {b['req_per_s']:>8.1f} {b['p50_ms']:>8.2f} "
                     f"{b['p99_ms']:>8.2f} {b['requests']:>7}   (batch {b['batch']}: "
                     f"{b['batched_images_per_s']:.0f} images/s)")
        turns = b["head_to_head"]
        lines.append(f"{name:<9} 1 client in {turns['rounds']} turns of {turns['turn_s']:g} s: p50 in process "
                     f"{turns['in_process_p50_ms']:.2f} ms, served (batching off) {turns['off_p50_ms']:.2f} ms, "
                     f"(on) {turns['on_p50_ms']:.2f} ms")
    return lines


def settings(args: argparse.Namespace) -> dict:
    """The run's settings for the JSON (paths inside the repository relative to it; where it was written left out)."""
    shown = {}
    for key, value in vars(args).items():
        if isinstance(value, Path):
            value = str(value.resolve().relative_to(ROOT)) if value.resolve().is_relative_to(ROOT) else str(value)
        shown[key] = value
    del shown["out"]
    return shown


def serving_versions() -> dict[str, str]:
    """The versions of the client and server packages (the machine's description covers the rest)."""
    from importlib import metadata

    return {name: metadata.version(name) for name in ("tritonclient", "nvidia-pytriton")}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from rich.console import Console

    from lion_export.atomic import write_bytes_atomically
    from lion_export.bench.machine import describe_machine
    from lion_export.progress import phases

    name = "serve_load" + ("_quick" if args.quick else "")
    folder = Path(tempfile.mkdtemp(prefix="lion-serve-load-"))
    started = time.perf_counter()
    try:
        with phases(Console(stderr=True), "exporting the models") as step:
            models, baselines, points = measure(export_models(args, folder), args, folder, step)
            step("writing the results")
            lines = goals(points, baselines, args.clients)
            document = {"machine": describe_machine(), "serving": serving_versions(), "settings": settings(args),
                        "seconds": round(time.perf_counter() - started, 1),
                        "models": {m.name: {"description": m.description, "in_process": baselines[m.name]}
                                   for m in models},
                        "points": points, "goals": lines}
            args.out.mkdir(parents=True, exist_ok=True)
            title = (f"python backend, {args.instances} instance(s), {args.form} form, {args.client} clients, "
                     f"{args.duration:g} s per point")
            plot_load(points, baselines, title, args.out / f"{name}.png")
            write_bytes_atomically(args.out / f"{name}.json", json.dumps(document, indent=1).encode() + b"\n")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print("\n".join(table(points, baselines) + [""] + lines))
    print(f"wrote {args.out / (name + '.json')} and {args.out / (name + '.png')}")


if __name__ == "__main__":
    main()
