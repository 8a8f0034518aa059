"""Pytest hooks that keep a test session's temporary files inside pytest's own temporary folder, and fail the
session if any are left behind.

Why: code under test (and the tests' helpers) create temporary folders with `tempfile`; a helper that forgot to
remove one leaked a folder into /tmp on every run, unnoticed. Here `tempfile`, and every subprocess through
TMPDIR, writes under `<basetemp>/tmp` from the start of collection, torch's compile cache goes to
`<basetemp>/torchinductor`, and the session fails when `<basetemp>/tmp` holds anything at its end that is not
already in the system's temporary folder (a name already there would not be a new file in it: some tools outside
the project keep a fixed-name state file there). pytest removes basetemp itself (pyproject.toml:
tmp_path_retention_policy = "failed").
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_REDIRECTED = ("TMPDIR", "TORCHINDUCTOR_CACHE_DIR")
_saved = pytest.StashKey[tuple[dict[str, str | None], str | None]]()
_folder = pytest.StashKey[Path]()
_present = pytest.StashKey[frozenset[str]]()


@pytest.hookimpl(trylast=True)          # after pytest's own configure has made the temporary-path factory
def pytest_configure(config: pytest.Config) -> None:
    basetemp = config._tmp_path_factory.getbasetemp()   # noqa: SLF001 - no public way before the first fixture
    folder = basetemp / "tmp"
    folder.mkdir(exist_ok=True)
    config.stash[_saved] = ({name: os.environ.get(name) for name in _REDIRECTED}, tempfile.tempdir)
    config.stash[_folder] = folder
    config.stash[_present] = frozenset(os.listdir(tempfile.gettempdir()))
    os.environ["TMPDIR"] = str(folder)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(basetemp / "torchinductor")
    tempfile.tempdir = str(folder)


@pytest.hookimpl(tryfirst=True)         # before pytest removes basetemp
def pytest_sessionfinish(session: pytest.Session) -> None:
    folder = session.config.stash.get(_folder, None)
    if folder is None or not folder.is_dir():
        return
    left = sorted({path.name for path in folder.iterdir()} - session.config.stash[_present])
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = f"temporary files left behind by the tests (they would have stayed in /tmp): {', '.join(left)}"
        if reporter is not None:
            reporter.write_line(message, red=True, bold=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config: pytest.Config) -> None:
    saved = config.stash.get(_saved, None)
    if saved is None:
        return
    environment, tempdir = saved
    for name, value in environment.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    tempfile.tempdir = tempdir
