"""Test-session set-up shared by every test module.

Triton kernels run under the interpreter on machines without a CUDA GPU (CI, developers' machines); the variable
must be set before triton is first imported, hence here and not in a fixture. Temporary files stay inside
pytest's temporary tree, and a session that leaves any behind fails (tests/temp_guard.py).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
# pytest-xdist runs one worker per core (pyproject.toml): each worker's torch then keeps to one thread, so the
# workers do not oversubscribe the cores between them
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    torch.set_num_threads(1)

sys.path.insert(0, str(Path(__file__).parent))  # tests/reference.py, the independent float64 reference

from temp_guard import pytest_configure, pytest_sessionfinish, pytest_unconfigure  # noqa: E402,F401 - hooks


@pytest.fixture(scope="session", autouse=True)
def _engine_exports_folder(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Where tests/engine_exports.py writes, when a collected module uses it (see its docstring)."""
    module = sys.modules.get("engine_exports")
    if module is not None:
        module.FOLDER = tmp_path_factory.mktemp("engine-exports")
