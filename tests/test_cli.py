"""The command group itself: the default subcommand, --version, and usage errors as one line with exit 2."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from lion_export import __version__
from lion_export.cli import main


def run(*args: str):
    return CliRunner().invoke(main, list(args), prog_name="lion-export")


def test_version_and_help():
    assert run("--version").output.strip() == f"lion-export, version {__version__}"
    result = run("--help")
    assert result.exit_code == 0
    assert all(name in result.output for name in ("export", "verify", "inspect", "compile-kernels"))


def test_bare_command_shows_help():
    result = run()
    assert "Usage: " in result.output and "Commands:" in result.output


@pytest.mark.parametrize("args,message", [
    (("export", "--bogus"), "No such option '--bogus' (see 'lion-export export --help')"),
    (("verify",), "Missing argument 'A' (see 'lion-export verify --help')"),
    (("model.pt", "--mode"), "Option '--mode' requires an argument"),
])
def test_usage_errors_are_one_line_exit_2(args, message):
    result = run(*args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lion-export: error: ") and message in lines[0]


def test_checkpoint_without_subcommand_goes_to_export(tmp_path):
    """`lion-export model.pt ...` is `lion-export export model.pt ...`: the export command's own check answers."""
    result = run(str(tmp_path / "missing.pt"), "--mode", "sideways")
    assert result.exit_code == 2
    assert result.output.strip() == ("lion-export: error: unknown --mode 'sideways'; "
                                     "choose one of: parallel, chunked, recurrent")
