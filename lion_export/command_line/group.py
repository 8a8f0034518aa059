"""The `lion-export` command group: a checkpoint path with no command name means `export`, a mistyped command name is
said to be one, and usage errors and interrupts end as the other errors do (errors.py)."""
from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

import click

from .errors import fail, interrupted, interrupts_unwind


class DefaultGroup(click.Group):
    """A group whose first argument, when it is not a subcommand name or an option, goes to DEFAULT_COMMAND."""

    DEFAULT_COMMAND = "export"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            self._refuse_mistyped_command(ctx, args[0])
            args = [self.DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)

    def _refuse_mistyped_command(self, ctx: click.Context, word: str) -> None:
        """`lion-export inpsect x.onnx` is a typo, `lion-export model.pt` an export: a word that is no existing
        path and is close to a command name, or has neither a folder nor a suffix, is taken for a command."""
        if os.sep in word or Path(word).exists():
            return
        close = difflib.get_close_matches(word, list(self.commands), n=1)
        if close:
            raise click.UsageError(f"no such command {word!r}; did you mean {close[0]!r}?", ctx)
        if not Path(word).suffix:
            raise click.UsageError(f"no such command {word!r} and no such file; commands: "
                                   f"{', '.join(self.commands)}", ctx)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """Usage errors (an unknown option, a bad value, a missing argument) as one line and exit 2, like every
        other bad input; a bare `lion-export` still shows the help; Ctrl-C and SIGTERM exit 130 and 143."""
        kwargs["standalone_mode"] = False
        try:
            with interrupts_unwind():
                return super().main(*args, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:
            exc.show()
            raise SystemExit(exc.exit_code) from None
        except click.UsageError as exc:
            command = exc.ctx.command_path if exc.ctx is not None else "lion-export"
            fail(f"{exc.format_message().rstrip('.')} (see '{command} --help')")
        except click.Abort as exc:            # click's form of KeyboardInterrupt (and so of SIGTERM)
            interrupted(exc)


__all__ = ["DefaultGroup"]
