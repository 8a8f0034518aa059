"""click parameter types of `lion-export`: a bad value is refused by click, as one line naming the option and the
value (exit 2), before any work; the command receives numbers, tuples and known names, never strings to parse.
"""
from __future__ import annotations

import importlib
from functools import cached_property
from pathlib import Path
from typing import Any

import click

from .errors import one_line


class LibraryChoice(click.Choice):
    """A click.Choice among the names of a library table (e.g. lion_export.export's MODES), read on first use:
    the table stays the one vocabulary, and --help does not import the torch behind it."""

    def __init__(self, module: str, table: str, metavar: str) -> None:  # click.Choice's would read the table now
        self.module, self.table, self.metavar = module, table, metavar
        self.case_sensitive = True

    @cached_property
    def choices(self) -> tuple[str, ...]:       # type: ignore[override]
        return tuple(getattr(importlib.import_module(self.module), self.table))

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        """A name, not the list: --help must not import the library (the option's help names the choices)."""
        return self.metavar


class LibraryParsed(click.ParamType):
    """A value the library parses, e.g. lion_export.engine.profiles.parse_range("--batch", text): the function is
    read on first use, and its ValueError is the usage error, in the library's words."""

    def __init__(self, module: str, function: str, *leading: str, metavar: str) -> None:
        self.module, self.function, self.leading, self.metavar = module, function, leading, metavar

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return self.metavar

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        parse = getattr(importlib.import_module(self.module), self.function)
        try:
            return parse(*self.leading, value)
        except ValueError as exc:
            raise click.UsageError(one_line(exc), ctx) from None


class CommaList(click.ParamType):
    """`a,b,c` -> a tuple, each item converted (and refused) by `item`, e.g. click.IntRange(min=2)."""

    name = "list"

    def __init__(self, item: click.ParamType) -> None:
        self.item = item

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple:
        if isinstance(value, tuple):
            return value
        parts = [part.strip() for part in str(value).split(",") if part.strip()]
        if not parts:
            self.fail(f"give a comma-separated list, got {value!r}", param, ctx)
        return tuple(self.item.convert(part, param, ctx) for part in parts)


class OutputBound(click.ParamType):
    """--atol / --rtol: `X` (every output) or `OUTPUT:X` (one output) -> (name or None, X), X >= 0."""

    name = "[OUTPUT:]X"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str | None, float]:
        if isinstance(value, tuple):
            return value
        name, separator, number = str(value).rpartition(":")
        try:
            bound = float(number)
        except ValueError:
            bound = -1.0
        if not bound >= 0 or (separator and not name):
            self.fail(f"give X or OUTPUT:X with a number X >= 0, got {value!r}", param, ctx)
        return name or None, bound


class ArtefactPath(click.ParamType):
    """A file, checked as click.Path(dir_okay=False) checks it (a Path), or a served model's URL
    (triton://HOST:PORT/MODEL, kept a string: a Path would fold its `//`)."""

    name = "path"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from lion_export.artefacts import is_served

        if is_served(value):
            return value
        return click.Path(dir_okay=False, path_type=Path).convert(value, param, ctx)


class Count(click.IntRange):
    """A whole number of something (tokens, runs, threads) from `min` up, shown as N in --help, not INTEGER RANGE."""

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        return "N"


POSITIVE = Count(min=1)

__all__ = ["LibraryChoice", "LibraryParsed", "CommaList", "OutputBound", "ArtefactPath", "Count", "POSITIVE"]
