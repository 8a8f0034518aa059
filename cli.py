"""The `lion-export` command: checkpoint -> ONNX (+ verification), and the tools around it.

Installed as `lion_export.console.cli`. The command only parses options and reports; all work lives in the
`lion_export` package so that it can be tested and used without a shell. `lion-export model.pt ...` with no
subcommand name means `lion-export export model.pt ...`, the main job.
"""
from __future__ import annotations

import click

from lion_export import __version__

DEFAULT_COMMAND = "export"


class DefaultGroup(click.Group):
    """A group whose first argument, when it is not a subcommand name or an option, goes to `export`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)


@click.group(cls=DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lion-export")
def main() -> None:
    """Export LION linear-attention models to ONNX / TensorRT and prove parity with eager PyTorch.

    \b
    lion-export model.pt --mode recurrent      # = lion-export export model.pt --mode recurrent
    """


if __name__ == "__main__":
    main()
