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
    assert result.output.strip() == ("lion-export: error: Invalid value for '--mode': 'sideways' is not one of "
                                     "'parallel', 'chunked', 'recurrent' (see 'lion-export export --help')")


@pytest.mark.parametrize("args,message", [
    (("export", "m.pt", "--batch", "0"), "Invalid value for '--batch': 0 is not in the range x>=1"),
    (("export", "m.pt", "--chunk-size", "big"), "Invalid value for '--chunk-size': 'big' is not a valid integer"),
    (("export", "m.pt", "--dtype", "bf16"), "Invalid value for '--dtype': 'bf16' is not one of 'fp32', 'fp16'"),
    (("export", "m.pt", "--atol", "logits:"), "Invalid value for '--atol': give X or OUTPUT:X with a number X >= 0"),
    (("export", "m.pt", "--heads", "-2"), "Invalid value for '--heads': -2 is not in the range x>=1"),
    (("verify", "a.pt", "b.onnx", "--seq-lens", "17,1"), "Invalid value for '--seq-lens': 1 is not in the range x>=2"),
    (("verify", "a.pt", "b.onnx", "--seq-lens", ","), "Invalid value for '--seq-lens': give a comma-separated list"),
    (("verify", "a.pt", "b.onnx", "--optimization", "max"),
     "'max' is not one of 'disable', 'basic', 'extended', 'all'"),
    (("bench", "m.pt", "--modes", "chunked,rnn"), "'rnn' is not one of 'parallel', 'chunked', 'recurrent'"),
    (("bench", "m.pt", "--timeout", "0"), "Invalid value for '--timeout': 0.0 is not in the range x>0"),
    (("compile-kernels", "--out", "k"), "Missing option '--arch'"),
    (("compile-kernels", "--arch", "sm_87"), "Missing option '--out'"),
])
def test_bad_values_are_refused_by_their_click_type_in_one_line(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run(*args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lion-export: error: ") and message in lines[0], result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("word,command", [("inpsect", "inspect"), ("verfy", "verify"), ("biuld", "build"),
                                          ("compile-kernel", "compile-kernels")])
def test_a_mistyped_command_is_named_with_the_closest_one(word, command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run(word, "x.onnx")
    assert result.exit_code == 2
    assert result.output.strip() == (f"lion-export: error: no such command '{word}'; did you mean '{command}'? "
                                     "(see 'lion-export --help')")


def test_a_word_without_suffix_is_no_command_but_an_existing_file_is_a_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("frobnicate")
    assert result.exit_code == 2 and "no such command 'frobnicate' and no such file; commands: export" in result.output
    (tmp_path / "inpsect").write_text("not a checkpoint")       # a real file, however close to a command name
    result = run("inpsect", "--no-verify")
    assert result.exit_code == 2 and "no such command" not in result.output and "inpsect" in result.output
    result = run("modle.pt")                                   # a suffix: a checkpoint path, missing
    assert result.exit_code == 2 and "no such command" not in result.output and "modle.pt" in result.output


def test_help_names_what_each_command_takes():
    assert "Usage: lion-export inspect [OPTIONS] FILE" in run("inspect", "--help").output
    build_help = " ".join(run("build", "--help").output.split())
    assert "default: 1, the traced batch B, max(8, B)" in build_help
    kernels_help = run("compile-kernels", "--help").output
    assert "--arch SM" in kernels_help and "[required]" in kernels_help
