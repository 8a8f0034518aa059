"""Closed-loop load: N clients, each sending one request after the other for a fixed time, and what came back.

Two load generators, one accounting:
- `run_load`: a client is a thread of this process with its own connection (`connect()` makes one; it returns the
  function that sends one request). Threads, not processes: on a 2-core machine the cores, not the GIL, bound the
  load generator (a request's bytes are written and read with the GIL released), and 16 processes would add 16
  interpreters and their context switches to the very cores the server needs.
- `run_load_async`: a client is a coroutine of one event loop, all sharing one asyncio client (`open_client()`),
  each keeping one request in flight: what a concurrency of N means to Triton's own perf_analyzer. No thread per
  client, so the load itself costs less of the cores the server needs.
The CPU time the load generator takes is measured (`client_cpu_s`) so a reader sees what share of the machine the
load itself cost.

Every request sent has exactly one fate:
- right: a response whose output matches the expected one (`np.allclose`, the given tolerances);
- wrong: a response with another output (counted with the failed ones in the goals);
- failed: an error response (the server answered, with an error status): `ErrorResponse`;
- lost: no response at all: any other exception (a timeout, a reset connection), or a request still unanswered
  when its client has not come back `grace_s` after the end of the run.
Latencies are those of the responses (right, wrong or error); throughput counts the right ones over the whole
run: from the first request to the end of the run or the last response, whichever is later.
"""
from __future__ import annotations

import asyncio
import resource
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

import numpy as np

#: one request: an input array -> the output array; raises ErrorResponse when the server answered with an error
Call = Callable[[np.ndarray], np.ndarray]
#: a new connection (one per client), as the function that sends one request over it
Connect = Callable[[], Call]
#: one request without blocking: an input array -> (awaited) the output array; raises ErrorResponse likewise
AsyncCall = Callable[[np.ndarray], Awaitable[np.ndarray]]
#: one client shared by every request in flight: `async with open_client() as call:`
AsyncOpen = Callable[[], AbstractAsyncContextManager[AsyncCall]]
MAX_MESSAGES = 5


class ErrorResponse(Exception):
    """The server answered the request with an error (a client's `Call` raises this; anything else is lost)."""


@dataclass
class _Client:
    """One client's counts; written by that client only, read after it is joined (or given up on)."""

    sent: int = 0
    right: int = 0
    wrong: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    last_response: float = 0.0

    def note(self, message: str) -> None:
        if len(self.messages) < MAX_MESSAGES:
            self.messages.append(" ".join(message.split())[:200])


@dataclass(frozen=True)
class LoadResult:
    """One run: how many requests were sent and what became of them, the latencies and the CPU the clients took."""

    clients: int
    seconds: float
    sent: int
    right: int
    wrong: int
    failed: int
    lost: int
    latencies_ms: tuple[float, ...]
    client_cpu_s: float
    messages: tuple[str, ...]

    def summary(self) -> dict:
        """The JSON-safe figures of the run (throughput, p50 / p99 latency, every count)."""
        ms = np.array(self.latencies_ms) if self.latencies_ms else np.array([np.nan])
        return {"clients": self.clients, "seconds": round(self.seconds, 3), "sent": self.sent, "right": self.right,
                "wrong": self.wrong, "failed": self.failed, "lost": self.lost,
                "req_per_s": self.right / self.seconds if self.seconds > 0 else 0.0,
                "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
                "mean_ms": float(ms.mean()), "client_cpu_s": round(self.client_cpu_s, 3),
                "messages": list(self.messages)}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _settle(state: _Client, began: float, expected: np.ndarray, outcome: np.ndarray | Exception, rtol: float,
            atol: float) -> None:
    """Gives the request sent at `began` its fate from what its call returned or raised."""
    state.last_response = time.perf_counter()
    if isinstance(outcome, ErrorResponse):
        state.latencies.append(state.last_response - began)
        state.failed += 1
        state.note(f"error response: {outcome}")
    elif isinstance(outcome, Exception):                # no response at all (counted as lost by _result)
        state.note(f"no response: {type(outcome).__name__}: {outcome}")
    else:
        state.latencies.append(state.last_response - began)
        if outcome.shape == expected.shape and np.allclose(outcome, expected, rtol=rtol, atol=atol):
            state.right += 1
        else:
            state.wrong += 1
            state.note(f"wrong output: shape {outcome.shape}, max difference "
                       f"{np.abs(outcome - expected).max() if outcome.shape == expected.shape else 'n/a'}")


def _client_loop(state: _Client, call: Call, cases: Sequence[tuple[np.ndarray, np.ndarray]], offset: int,
                 start: threading.Barrier, deadline: list[float], rtol: float, atol: float) -> None:
    start.wait()
    index = offset
    while time.perf_counter() < deadline[0]:
        image, expected = cases[index % len(cases)]
        index += 1
        state.sent += 1
        began = time.perf_counter()
        try:
            outcome: np.ndarray | Exception = call(image)
        except Exception as error:  # noqa: BLE001 - every failure is a fate, see _settle
            outcome = error
        _settle(state, began, expected, outcome, rtol, atol)


def _check(clients: int, duration_s: float, cases: Sequence) -> None:
    if clients < 1 or duration_s <= 0 or not cases:
        raise ValueError("run_load needs clients >= 1, a positive duration and at least one case")


def _result(states: list[_Client], began: float, deadline: float, cpu: float) -> LoadResult:
    """The run's LoadResult; lost: every request sent that has no other fate (no response, or its client is still
    waiting for one)."""
    finished = max([s.last_response for s in states] + [deadline])
    sent, right, wrong, failed = (sum(getattr(s, k) for s in states) for k in ("sent", "right", "wrong", "failed"))
    return LoadResult(len(states), finished - began, sent, right, wrong, failed, sent - right - wrong - failed,
                      tuple(t * 1e3 for s in states for t in s.latencies), cpu,
                      tuple(dict.fromkeys(m for s in states for m in s.messages))[:MAX_MESSAGES])


def run_load(connect: Connect, cases: Sequence[tuple[np.ndarray, np.ndarray]], clients: int, duration_s: float, *,
             grace_s: float = 30.0, rtol: float = 1e-4, atol: float = 1e-4) -> LoadResult:
    """`clients` threads send `cases` (input, expected output) round-robin for `duration_s` seconds, each from its
    own offset; returns what became of every request (see the module docstring)."""
    _check(clients, duration_s, cases)
    states = [_Client() for _ in range(clients)]
    calls = [connect() for _ in range(clients)]          # connections are made before the clock starts
    start = threading.Barrier(clients + 1)
    deadline = [float("inf")]
    threads = [threading.Thread(target=_client_loop, args=(state, call, cases, n, start, deadline, rtol, atol),
                                daemon=True, name=f"load-client-{n}")
               for n, (state, call) in enumerate(zip(states, calls))]
    for thread in threads:
        thread.start()
    cpu_before = _cpu_seconds()
    began = time.perf_counter()
    deadline[0] = began + duration_s
    start.wait()
    for thread in threads:
        thread.join(max(0.0, deadline[0] + grace_s - time.perf_counter()))
    return _result(states, began, deadline[0], _cpu_seconds() - cpu_before)


async def _in_flight(state: _Client, call: AsyncCall, cases: Sequence[tuple[np.ndarray, np.ndarray]], offset: int,
                     deadline: float, rtol: float, atol: float) -> None:
    """One client of run_load_async: one request in flight, the next sent as soon as the last one is settled."""
    index = offset
    while time.perf_counter() < deadline:
        image, expected = cases[index % len(cases)]
        index += 1
        state.sent += 1
        began = time.perf_counter()
        try:
            outcome: np.ndarray | Exception = await call(image)
        except Exception as error:  # noqa: BLE001 - every failure is a fate, see _settle (cancelling is not one)
            outcome = error
        _settle(state, began, expected, outcome, rtol, atol)


async def _run_async(open_client: AsyncOpen, cases: Sequence[tuple[np.ndarray, np.ndarray]], clients: int,
                     duration_s: float, grace_s: float, rtol: float, atol: float) -> LoadResult:
    states = [_Client() for _ in range(clients)]
    async with open_client() as call:
        cpu_before = _cpu_seconds()
        began = time.perf_counter()
        deadline = began + duration_s
        tasks = [asyncio.create_task(_in_flight(state, call, cases, n, deadline, rtol, atol))
                 for n, state in enumerate(states)]
        _, unfinished = await asyncio.wait(tasks, timeout=duration_s + grace_s)
        for task in unfinished:                           # its request is still unanswered: lost
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
        cpu = _cpu_seconds() - cpu_before
    return _result(states, began, deadline, cpu)


def run_load_async(open_client: AsyncOpen, cases: Sequence[tuple[np.ndarray, np.ndarray]], clients: int,
                   duration_s: float, *, grace_s: float = 30.0, rtol: float = 1e-4, atol: float = 1e-4) -> LoadResult:
    """As `run_load`, but the `clients` are coroutines on one event loop sharing one client from `open_client`,
    each keeping one request in flight (see the module docstring)."""
    _check(clients, duration_s, cases)
    return asyncio.run(_run_async(open_client, cases, clients, duration_s, grace_s, rtol, atol))


__all__ = ["AsyncCall", "AsyncOpen", "Call", "Connect", "ErrorResponse", "LoadResult", "run_load", "run_load_async"]
