"""The benchmark scripts' own checks. kernels_gpu.py: the GPU benchmark's smoke run, every code path on the CPU,
before a GPU session. serve_load.py: its load generator against a fake server, its arithmetic and its options (a
real run starts a server and takes minutes: it is a benchmark, not a test).

GPU time is scarce (a session may get one short run), so the script must work the first time it meets a GPU. --smoke
runs the same columns, forward and backward, table, goals, JSON and plot under the Triton interpreter with tiny fp32
shapes; this test runs it as a user would, in a subprocess, and checks what it wrote.
"""
from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).parent.parent / "benchmarks" / "kernels_gpu.py"
COLUMNS = [f"{column} {mode}" for column in ("triton-chunked", "torch-chunked", "torch-parallel", "sdpa")
           for mode in ("fwd", "fwd+bwd")] + ["triton-scan fwd"]


def test_smoke_run_writes_every_column(tmp_path: Path) -> None:
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(tmp_path)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "SMOKE RUN" in done.stdout
    results = json.loads((tmp_path / "kernels_gpu.json").read_text())
    assert results["smoke"] is True and results["mode"] == "smoke" and "SMOKE" in results["unit"]
    assert results["complete"] is True and results["skipped_lengths"] == [] and results["errors"] == {}
    assert [row["L"] for row in results["rows"]] == [32, 48]
    for row in results["rows"]:
        assert sorted(k for k in row if k != "L") == sorted(COLUMNS)
        assert all(isinstance(row[k], float) and row[k] > 0 for k in COLUMNS), row
    assert results["goals"] and all(line.startswith("[smoke") for line in results["goals"])
    assert (tmp_path / "kernels_gpu.png").stat().st_size > 0
    assert not list(tmp_path.glob(".*.tmp"))          # the atomic writes left no temp files behind


def test_budget_stops_new_lengths_and_keeps_what_was_measured(tmp_path: Path) -> None:
    """A budget of 0: the first length (the shortest) still runs and is written, the rest listed as skipped."""
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(tmp_path), "--lengths", "48,16",
                           "--budget-s", "0"], env=env, cwd=tmp_path, capture_output=True, text=True, check=False,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "kernels_gpu.json").read_text())
    assert [row["L"] for row in results["rows"]] == [16]
    assert results["skipped_lengths"] == [48] and results["complete"] is False
    assert "skipped (budget): L = [48]" in done.stdout


def test_smoke_never_writes_the_recorded_results() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--smoke"], capture_output=True, text=True, check=False,
                          timeout=120)
    assert done.returncode != 0 and "--smoke needs --out" in done.stderr


SERVE_LOAD = Path(__file__).parent.parent / "benchmarks" / "serve_load.py"


@pytest.fixture(scope="module")
def serve_load():
    """benchmarks/serve_load.py as a module (its folder on sys.path only while it is imported)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(SERVE_LOAD.parent))
        module = importlib.import_module("serve_load")
        clients = importlib.import_module("load_clients")
    return module, clients


def test_load_generator_gives_every_request_one_fate(serve_load) -> None:
    """A fake server: image 0 answered right, 1 an error response, 2 no response, 3 a wrong answer; one client's
    fifth request never returns. Each request is counted once, by what became of it."""
    _, load_clients = serve_load
    cases = [(np.full((1, 2), i, np.float32), np.full((1, 2), 2 * i, np.float32)) for i in range(4)]
    release = threading.Event()
    made = []

    def connect():
        number, sent = len(made), []
        made.append(number)

        def call(image):
            sent.append(image)
            if number == 0 and len(sent) == 5:
                release.wait(10)                 # this request outlives the run and its grace
            case = int(image[0, 0])
            if case == 1:
                raise load_clients.ErrorResponse("bad input")
            if case == 2:
                raise ConnectionResetError("reset by peer")
            return image * (2 if case == 0 else 3)
        return call

    try:
        started = time.perf_counter()
        result = load_clients.run_load(connect, cases, 3, 0.3, grace_s=0.2)
        took = time.perf_counter() - started
    finally:
        release.set()
    assert took < 2.0
    assert result.sent == result.right + result.wrong + result.failed + result.lost
    # client 0 sent cases 0..3 once, then case 0 never came back; clients 1 and 2 sent every case in turn, so
    # each case within 1 of a quarter of their requests per client
    assert result.sent > 100
    quarter = (result.sent - 5) / 4
    for count in (result.right, result.failed, result.wrong):
        assert abs(count - (quarter + 1)) <= 2, (count, quarter)
    assert abs(result.lost - (quarter + 2)) <= 2, (result.lost, quarter)
    assert len(result.latencies_ms) == result.right + result.wrong + result.failed
    summary = result.summary()
    assert summary["req_per_s"] == pytest.approx(result.right / result.seconds)
    assert summary["p50_ms"] <= summary["p99_ms"]
    assert any(m.startswith("error response: bad input") for m in summary["messages"])
    assert any("wrong output" in m for m in summary["messages"])


def test_async_load_generator_gives_every_request_one_fate(serve_load) -> None:
    """The same fake server behind one asyncio client: each of 3 coroutines keeps one request in flight; the one that
    sends image 0 as its fifth request never hears back and is cancelled after the grace: that request is lost."""
    _, load_clients = serve_load
    cases = [(np.full((1, 2), i, np.float32), np.full((1, 2), 2 * i, np.float32)) for i in range(4)]
    calls = []

    @contextlib.asynccontextmanager
    async def open_client():
        async def call(image):
            case = int(image[0, 0])
            calls.append(case)
            number = len(calls)
            await asyncio.sleep(0)               # a real round trip yields to the other requests in flight
            if number == 5:
                await asyncio.Event().wait()     # this request outlives the run and its grace
            if case == 1:
                raise load_clients.ErrorResponse("bad input")
            if case == 2:
                raise ConnectionResetError("reset by peer")
            return image * (2 if case == 0 else 3)
        yield call

    started = time.perf_counter()
    result = load_clients.run_load_async(open_client, cases, 3, 0.3, grace_s=0.2)
    assert time.perf_counter() - started < 2.0
    assert result.clients == 3 and result.sent == len(calls) > 100
    assert result.sent == result.right + result.wrong + result.failed + result.lost
    hung = calls[4]
    counts = {case: calls.count(case) for case in range(4)}
    counts[hung] -= 1
    assert (result.right, result.failed, result.wrong) == (counts[0], counts[1], counts[3])
    assert result.lost == counts[2] + 1
    assert len(result.latencies_ms) == result.right + result.wrong + result.failed
    assert any(m.startswith("no response: ConnectionResetError") for m in result.messages)


def test_server_statistics_are_per_request(serve_load) -> None:
    """Triton adds a batch's execute time to each of its requests: 3 batches of 4 requests, 10 ms each."""
    module, _ = serve_load
    before = {"inferences": 5, "executions": 5, "queue_ns": 0, "execute_ns": 0}
    after = {"inferences": 17, "executions": 8, "queue_ns": 24_000_000, "execute_ns": 120_000_000}
    assert module.server_side(before, after) == {"mean_batch": 4.0, "queue_ms": 2.0, "execute_ms": 10.0}


def test_goals_say_met_and_missed_with_their_figures(serve_load) -> None:
    module, _ = serve_load
    point = {"failed": 0, "wrong": 0, "lost": 0}
    points = [{**point, "model": "vit_tiny", "batching": "off", "clients": 16, "sent": 4000, "req_per_s": 50.0},
              {**point, "model": "vit_tiny", "batching": "on", "clients": 16, "sent": 6000, "req_per_s": 99.0}]
    alone = {"vit_tiny": {"p50_ms": 10.0, "req_per_s": 100.0, "batch": 16, "batched_images_per_s": 130.0,
                          "head_to_head": {"in_process_p50_ms": 10.0, "off_p50_ms": 15.0, "on_p50_ms": 15.1}}}
    lines = module.goals(points, alone, (1, 16))
    assert lines[0].startswith("met: 0 failed or lost") and "(10000 requests at 16 clients" in lines[0]
    assert lines[1].startswith("MISSED: vit_tiny, dynamic batching") and "(99 vs 50 req/s at 16 clients: 1.98x" in lines[1]
    assert lines[1].endswith("batches of 16 ran 1.30x the images/s of one at a time)")
    assert lines[2].startswith("met: vit_tiny at 1 client (batching off)") and "(15.00 vs 10.00 ms: 1.50x)" in lines[2]
    assert lines[3].startswith("MISSED: vit_tiny at 1 client (batching on)") and "1.51x" in lines[3]
    points[0]["lost"] = 1
    assert module.goals(points, alone, (1, 16))[0].startswith("MISSED")


@pytest.mark.parametrize("args, message", [(["--clients", "4,x"], "--clients must be comma-separated integers"),
                                            (["--clients", "0"], "--clients must be positive"),
                                            (["--image-size", "50"], "multiple of the patch size"),
                                            (["--models", "bert"], "--models: unknown"),
                                            (["--client", "udp"], "argument --client: invalid choice")])
def test_serve_load_refuses_bad_options_in_one_line(args: list[str], message: str) -> None:
    done = subprocess.run([sys.executable, str(SERVE_LOAD), *args], capture_output=True, text=True, check=False,
                          timeout=120)
    assert done.returncode == 2 and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
