"""The package works in every way people run Python: wheel, `pip install -e .`, Python started from the repo root,
and `lion-export --help` without torch. Each check runs a fresh interpreter, as a user's shell would."""
from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINKED = {"kernels": ROOT / "kernels", "plugins": ROOT / "plugins", "cli.py": ROOT / "cli.py"}


def _python(code: str, cwd: Path, executable: str = sys.executable) -> str:
    done = subprocess.run([executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_source_tree_links_point_at_the_top_level_folders():
    for name, target in LINKED.items():
        link = ROOT / "lion_export" / name
        assert link.is_symlink() and link.resolve() == target.resolve(), f"lion_export/{name} must link to {target}"


def test_imports_from_the_repo_root_resolve_into_the_source_tree():
    found = _python("import lion_export.kernels, lion_export.plugins, lion_export.cli as c; "
                    "print(lion_export.kernels.__file__); print(lion_export.plugins.__file__); print(c.__file__)",
                    cwd=ROOT)
    kernels, plugins, cli = (Path(line).resolve() for line in found.splitlines())
    assert kernels == (ROOT / "kernels" / "__init__.py").resolve()
    assert plugins == (ROOT / "plugins" / "__init__.py").resolve()
    assert cli == (ROOT / "cli.py").resolve()


def test_the_command_line_does_not_import_torch_or_onnx():
    """`lion-export --help` must not pay for torch (3 s): the CLI module and the package root import lazily."""
    loaded = _python("import sys, lion_export, lion_export.cli; "
                     "print(','.join(m for m in ('torch', 'onnx', 'onnxruntime', 'triton', 'numpy') if m in sys.modules))",
                     cwd=ROOT)
    assert loaded == ""


def test_package_root_names_load_on_first_use():
    assert _python("import lion_export; print(lion_export.create_model.__module__)", cwd=ROOT) == \
        "lion_export.models.presets"


def test_wheel_holds_the_linked_folders_as_real_files(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", str(ROOT), "-w", str(tmp_path)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("lion_export-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("lion_export/kernels/scan.py", "lion_export/kernels/aot/specs.py", "lion_export/plugins/__init__.py",
                   "lion_export/cli.py", "lion_export/forms/chunked.py", "lion_export/checkpoints/public.py"):
        assert needed in names
    assert not any(name.split("/")[0] in {"kernels", "plugins", "cli.py", "tests"} for name in names)


@pytest.mark.slow
def test_editable_install_gives_a_working_command(tmp_path):
    """Setuptools' default editable mode (no --config-settings) in a fresh venv: the entry point and
    lion_export.kernels resolve into this checkout, from any working directory."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = str(env_dir / "bin" / "python")
    install = subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", "click>=8.1", "-e", str(ROOT)],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr
    helped = subprocess.run([str(env_dir / "bin" / "lion-export"), "--help"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert helped.returncode == 0, helped.stderr
    assert "Usage: lion-export" in helped.stdout
    # find_spec locates the subpackage without executing it (this bare venv has no torch)
    origin = _python("import importlib.util as u; print(u.find_spec('lion_export.kernels').origin)", cwd=tmp_path,
                     executable=python)
    assert Path(origin).resolve() == (ROOT / "kernels" / "__init__.py").resolve()
