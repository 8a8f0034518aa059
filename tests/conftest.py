"""Test-session set-up shared by every test module.

Triton kernels run under the interpreter on machines without a CUDA GPU (CI, developers' machines); the variable
must be set before triton is first imported, hence here and not in a fixture.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

sys.path.insert(0, str(Path(__file__).parent))  # tests/reference.py, the independent float64 reference
