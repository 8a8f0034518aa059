"""The README and docs/ stay true: the README is a short guide with no links out of the repository, every relative
link lands on a file (and heading) that exists, its test command is what CI runs, and the examples it and
docs/checkpoints.md show run as written."""
from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """The anchor a Markdown renderer gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(line.lstrip("#")) for line in page.read_text().splitlines() if line.startswith("#")}


def _code_blocks(page: Path, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", page.read_text(), flags=re.S)


def test_readme_is_a_short_guide_with_no_links_out_of_the_repository():
    text = README.read_text()
    assert len(text.splitlines()) <= 300
    assert not re.search(r"https?://", text)


def test_every_relative_link_resolves():
    broken = []
    for page in PAGES:
        for target in LINK.findall(page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, broken


def test_readme_test_command_is_what_ci_runs():
    """The README's second command, step by step, is .ci/run's (pip's --quiet and `python -m` aside)."""
    readme_steps = next(line for block in _code_blocks(README, "bash") for line in block.splitlines()
                        if line.rstrip().endswith("pytest -q")).split("&&")
    ci_steps = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line.startswith(("python -m pip", "pytest"))]

    def words(step: str) -> list[str]:
        return [w for w in shlex.split(step.replace("python -m pip", "pip")) if w != "--quiet"]

    assert [words(s) for s in readme_steps] == [words(s) for s in ci_steps]


def test_config_json_example_of_docs_checkpoints_reads_a_public_state_dict(tmp_path):
    import torch

    from lion_export import ReadOptions, read_model
    from lion_export.models import model_from_config

    (example,) = _code_blocks(ROOT / "docs" / "checkpoints.md", "json")
    arch = json.loads(example)
    (tmp_path / "arch.json").write_text(example)
    torch.manual_seed(0)
    state = model_from_config(arch).state_dict()
    torch.save(state, tmp_path / "lion_s_tiny.pth")
    model = read_model(tmp_path / "lion_s_tiny.pth", ReadOptions(config_path=tmp_path / "arch.json"))
    config = model.config.to_dict()
    assert {key: config[key] for key in arch} == arch
    assert torch.equal(model.state_dict()["blocks.11.attn.a_i.weight"], state["blocks.11.attn.a_i.weight"])


def test_readme_python_export_and_verify_runs(tmp_path):
    """The README's first Python block, run as printed (its output files land in tmp_path)."""
    snippet = next(block for block in _code_blocks(README, "python") if "export_onnx" in block)
    snippet = snippet.replace("examples/lion_s_digits.pt", str(ROOT / "examples" / "lion_s_digits.pt"))
    done = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "parity PASSED" in done.stdout
    assert {p.name for p in tmp_path.iterdir()} >= {"digits.onnx", "report.json", "report.errors.png"}


def test_docs_cli_lists_every_option_of_every_command():
    """docs/cli.md is the reference of the command line: each command has its section, and every option of it
    (its own, or one of the shared groups listed once at the end) appears there by name."""
    import click

    from lion_export.cli import main

    text = (ROOT / "docs" / "cli.md").read_text()
    missing = [f"{name} {opt}" for name, command in main.commands.items()
               for param in command.params if isinstance(param, click.Option) and param.name != "help"
               for opt in param.opts if f"`{opt}" not in text and f", {opt}" not in text]
    assert not missing
    assert all(f"## {name}\n" in text for name in main.commands)
