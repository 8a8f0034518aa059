"""Progress of long work: live on a terminal, one line per finished phase with its time everywhere else.

rich's live displays (a status spinner, a progress bar) print nothing when the stream is not a terminal, so a
piped or CI export said nothing until it ended. Off a terminal each phase (or item), once finished, prints one line
with the seconds it took. Lines come when a phase ends, not when it starts: a bad input found during the first
phase leaves only its own one-line error on stderr, and a failed phase prints no time for itself.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from rich.console import Console

T = TypeVar("T")


def _line(console: "Console", text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


@contextmanager
def phases(console: "Console", first: str) -> Iterator[Callable[[str], None]]:
    """Report the phases of one job; yields `step(description)`, called as each next phase starts.

    On a terminal: one status line, updated. Otherwise: "<phase>: <seconds> s" as each phase ends, then the total.
    """
    if console.is_terminal:
        with console.status(first) as status:
            yield status.update
        return
    start = phase_start = time.perf_counter()
    current = first

    def step(description: str) -> None:
        nonlocal current, phase_start
        now = time.perf_counter()
        _line(console, f"{current}: {now - phase_start:.1f} s")
        current, phase_start = description, now

    yield step
    now = time.perf_counter()
    _line(console, f"{current}: {now - phase_start:.1f} s")
    _line(console, f"done in {now - start:.1f} s")


def items(console: "Console", sequence: Iterable[T], total: int, describe: Callable[[T], str]) -> Iterator[T]:
    """Yield `sequence`'s items; a bar on a terminal, "<describe(item)> (i/total): <seconds> s" lines otherwise."""
    if console.is_terminal:
        from rich.progress import Progress

        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("", total=total)
            for item in sequence:
                bar.update(task, description=describe(item))
                yield item
                bar.advance(task)
        return
    for index, item in enumerate(sequence, start=1):
        started = time.perf_counter()
        yield item
        _line(console, f"{describe(item)} ({index}/{total}): {time.perf_counter() - started:.1f} s")


__all__ = ["phases", "items"]
