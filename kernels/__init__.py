"""Triton kernels behind `lion_attention(..., backend="triton")`, and their ahead-of-time descriptions."""
from .scan import lion_scan
