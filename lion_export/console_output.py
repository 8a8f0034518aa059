"""What people read: drawn with rich on a terminal, plain text anywhere else.

A pipe, a file or a CI log gets no box drawing and nothing cut at 80 columns (paths, shapes and sha256 hashes
stay whole and greppable), and progress as one line per item instead of a live bar that would print nothing.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


def plain_table(headers: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, numbers right-aligned; never truncated."""
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)]
    numeric = [all(_is_number(r[i]) for r in body) and bool(body) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if n else c.ljust(w) for c, w, n in zip(cells, widths, numeric)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, body)])


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return text == "n/a"
    return True


def output_console(stderr: bool = False) -> "Console":
    """A rich Console for stdout (or stderr) that wraps nothing when the stream is not a terminal."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, soft_wrap=not stream.isatty())


def print_table(console: "Console", headers: Sequence[str], body: Sequence[Sequence[str]],
                title: str | None = None) -> None:
    """A rich table on a terminal; otherwise the title and a plain_table (cells are plain text, never markup)."""
    if not console.is_terminal:
        text = plain_table(headers, body)
        console.print(text if title is None else f"{title}\n{text}", markup=False, highlight=False, soft_wrap=True)
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(*headers, title=None if title is None else escape(title), title_justify="left")
    for row in body:
        table.add_row(*map(escape, row))
    console.print(table)


class CountedProgress:
    """Progress through a counted list of items, reported as update(description, done, total) (`done` items are
    finished): a transient bar on a terminal (stderr), otherwise a line per update with the seconds so far."""

    def __init__(self, label: str) -> None:
        self.label = label

    def __enter__(self) -> "CountedProgress":
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.start = time.perf_counter()
        self.bar = Progress(TextColumn(f"{self.label} {{task.description}}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), transient=True) if sys.stderr.isatty() else None
        return self

    def update(self, text: str, done: int, total: int) -> None:
        if self.bar is None:
            print(f"{self.label} {text}: {done}/{total} done ({time.perf_counter() - self.start:.0f} s)",
                  file=sys.stderr, flush=True)
        elif not self.bar.tasks:
            self.bar.start()
            self.bar.add_task(text, total=total, completed=done)
        else:
            self.bar.update(self.bar.tasks[0].id, completed=done, description=text)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


__all__ = ["plain_table", "output_console", "print_table", "CountedProgress"]
