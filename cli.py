"""The `lion-export` command: checkpoint -> ONNX (+ verification), and the tools around it.

Installed as `lion_export.console.cli`. The command only parses options and reports; all work lives in the
`lion_export` package so that it can be tested and used without a shell.
"""
from __future__ import annotations

import click

from lion_export import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lion-export")
def main() -> None:
    """Export LION linear-attention models to ONNX / TensorRT and prove parity with eager PyTorch."""


if __name__ == "__main__":
    main()
