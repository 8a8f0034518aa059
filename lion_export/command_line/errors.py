"""How `lion-export` ends when something goes wrong: one line on stderr and an exit code that says whose fault it was.

    2    bad input (a ValueError / OSError from the library: a missing file, an option the model cannot take)
    1    a check that failed (parity, a TensorRT build of a file that passed every check) or an internal failure
    130  interrupted by Ctrl-C (SIGINT), 143 by SIGTERM: 128 + the signal, as a shell reports it

Every command body runs inside `errors(debug, step)` instead of repeating try / except; --debug re-raises so
the traceback shows. Interrupts unwind like exceptions (SIGTERM is turned into one), so every `finally` and
atomic write cleans up on the way out and nothing partial is left.
"""
from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import click

PREFIX = "lion-export: error: "


def one_line(error: BaseException) -> str:
    """An exception's message on one line (some of torch's span several)."""
    return " ".join(str(error).split()) or type(error).__name__


def fail(message: str, code: int = 2) -> NoReturn:
    """One line on stderr and exit `code` (2, bad input, unless said otherwise): no traceback, nothing written."""
    click.echo(f"{PREFIX}{message}", err=True)
    raise SystemExit(code)


@contextmanager
def errors(debug: bool, step: str, failed: tuple[type[Exception], ...] = ()) -> Iterator[None]:
    """Turn what the library raises during `step` into one line and an exit code.

    `failed`: exception types that mean a check failed on good input (exit 1, e.g. engine.build.BuildError);
    ValueError / OSError: bad input (exit 2); anything else is a failure of ours (exit 1, pointing at --debug).
    """
    try:
        yield
    except failed as exc:
        if debug:
            raise
        fail(one_line(exc), code=1)
    except (ValueError, OSError) as exc:
        if debug:
            raise
        fail(one_line(exc))
    except Exception as exc:  # noqa: BLE001 - an internal failure: one line, exit 1
        if debug:
            raise
        fail(f"{step} failed: {type(exc).__name__}: {one_line(exc)} (rerun with --debug for the traceback)", code=1)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is so that it unwinds (and cleans up) as Ctrl-C does."""


def _raise_terminated(signum: int, _frame: object) -> None:
    raise Terminated(signum)


@contextmanager
def interrupts_unwind() -> Iterator[None]:
    """While the command runs, SIGTERM raises Terminated (the handler before is restored afterwards)."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:          # not the main thread (an embedding application): leave its handlers alone
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def interrupted(exc: BaseException) -> NoReturn:
    """Exit as a shell reports a process killed by the signal: 130 for Ctrl-C, 143 for SIGTERM. `exc` is the
    KeyboardInterrupt, or the click.Abort that click raised from it."""
    signum = signal.SIGTERM if isinstance(exc.__cause__ or exc, Terminated) else signal.SIGINT
    click.echo(f"lion-export: interrupted ({signal.Signals(signum).name})", err=True)
    raise SystemExit(128 + signum)


__all__ = ["PREFIX", "one_line", "fail", "errors", "Terminated", "interrupts_unwind", "interrupted"]
