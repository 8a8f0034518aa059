"""The builder's progress (TensorRT's IProgressMonitor) shown to a person: a bar on a terminal, a line per phase
otherwise (logs, CI), nothing with --quiet.

TensorRT reports nested phases ("Building engine" > "Optimizing graph", "Timing tactics" > ...), each with a step
count. The bar follows the outermost phase's steps and names the innermost phase running; the line display prints
each phase of the two outer levels when it finishes, with the elapsed time since the build started.
"""
from __future__ import annotations

import time
from typing import Any, Protocol


class PhaseDisplay(Protocol):
    def start(self, phase: str, parent: str | None, steps: int) -> None: ...
    def finish(self, phase: str) -> None: ...
    def close(self) -> None: ...


class SilentDisplay:
    """--quiet: shows nothing."""

    def start(self, phase: str, parent: str | None, steps: int) -> None:
        pass

    def finish(self, phase: str) -> None:
        pass

    def close(self) -> None:
        pass


class _Nesting:
    """Which phases are open, and how deep each is (0 = the outermost)."""

    def __init__(self) -> None:
        self.depth: dict[str, int] = {}
        self.started: float | None = None      # the first phase's start: the build itself, not the set-up

    def open(self, phase: str, parent: str | None) -> int:
        if self.started is None:
            self.started = time.perf_counter()
        depth = 0 if parent is None else self.depth.get(parent, 0) + 1
        self.depth[phase] = depth
        return depth

    def close(self, phase: str) -> int:
        return self.depth.pop(phase, 0)

    def elapsed(self) -> float:
        return 0.0 if self.started is None else time.perf_counter() - self.started


class PhaseLines(SilentDisplay):
    """One line per finished phase of the two outer levels, with elapsed seconds (not a terminal)."""

    def __init__(self, echo) -> None:
        self.echo = echo
        self.nesting = _Nesting()
        self.opened: dict[str, float] = {}

    def start(self, phase: str, parent: str | None, steps: int) -> None:
        self.nesting.open(phase, parent)
        self.opened[phase] = self.nesting.elapsed()

    def finish(self, phase: str) -> None:
        depth = self.nesting.close(phase)
        if depth <= 1:
            took = self.nesting.elapsed() - self.opened.pop(phase, 0.0)
            self.echo(f"[{self.nesting.elapsed():6.1f} s] {'  ' * depth}{phase} ({took:.1f} s)")


class PhaseBar(SilentDisplay):
    """A rich progress bar over the outermost phase's steps, naming the innermost running phase."""

    def __init__(self, console) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.nesting = _Nesting()
        self.progress = Progress(TextColumn("building"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                                 transient=True)
        self.progress.start()
        self.task = self.progress.add_task("reading and parsing the file", total=None)

    def start(self, phase: str, parent: str | None, steps: int) -> None:
        if self.nesting.open(phase, parent) == 0:
            self.progress.update(self.task, total=steps, completed=0)
        self.progress.update(self.task, description=phase)

    def finish(self, phase: str) -> None:
        if self.nesting.close(phase) == 1:
            self.progress.update(self.task, advance=1)

    def close(self) -> None:
        self.progress.stop()


def choose_display(console, *, quiet: bool) -> PhaseDisplay:
    """The bar on a terminal, phase lines (to the same console) otherwise, nothing when quiet."""
    if quiet:
        return SilentDisplay()
    if console.is_terminal:
        return PhaseBar(console)
    return PhaseLines(lambda line: console.print(line, highlight=False, markup=False))


def progress_monitor(trt: Any, display: PhaseDisplay) -> Any:
    """A trt.IProgressMonitor (of whichever TensorRT `trt` is) that forwards to `display` and never cancels.

    An exception must not escape into TensorRT's C++ callback, so a failing display is silenced instead."""

    class Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            try:
                display.start(phase_name, parent_phase, num_steps)
            except Exception:  # noqa: BLE001 - see the docstring
                pass

        def step_complete(self, phase_name: str, step: int) -> bool:
            return True

        def phase_finish(self, phase_name: str) -> None:
            try:
                display.finish(phase_name)
            except Exception:  # noqa: BLE001 - see the docstring
                pass

    return Monitor()


__all__ = ["PhaseDisplay", "SilentDisplay", "PhaseLines", "PhaseBar", "choose_display", "progress_monitor"]
