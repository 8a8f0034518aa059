"""tests/temp_guard.py: a test session that leaves a temporary folder behind fails and names it; one that cleans
up passes. Each case runs a small pytest session of its own (pytester) with the same hooks as this suite."""
from __future__ import annotations

import tempfile

import pytest

pytest_plugins = ["pytester"]

LEAKY = """
import tempfile

FOLDER = tempfile.mkdtemp(prefix="lion-engine-tests-")     # at import, as tests/engine_exports.py once did


def test_passes():
    assert FOLDER
"""
TIDY = """
import subprocess
import sys
import tempfile


def test_cleans_up():
    with tempfile.TemporaryDirectory(prefix="lion-tidy-") as folder:
        assert folder.startswith(tempfile.gettempdir())
    # a subprocess inherits TMPDIR, so its temporary files are in the session's folder too
    code = "import tempfile; print(tempfile.gettempdir())"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == \\
        tempfile.gettempdir()
"""


@pytest.mark.parametrize("source, status", [(LEAKY, 1), (TIDY, 0)], ids=["leaky", "tidy"])
def test_a_session_fails_when_it_leaves_temporary_files(pytester, source, status):
    before = tempfile.gettempdir()
    pytester.makeconftest("from temp_guard import pytest_configure, pytest_sessionfinish, pytest_unconfigure\n")
    pytester.makepyfile(test_case=source)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)                  # the test itself passes either way
    assert result.ret == status
    left = [line for line in result.outlines if "temporary files left behind" in line]
    if status:
        assert len(left) == 1 and "lion-engine-tests-" in left[0], result.outlines
    else:
        assert not left
    assert tempfile.gettempdir() == before           # the inner session restored this one's
