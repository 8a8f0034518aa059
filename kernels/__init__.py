"""Triton kernels behind `lion_attention(..., backend="triton")`, and their ahead-of-time descriptions."""
from .autograd import lion_chunked
from .scan import lion_scan

__all__ = ["lion_chunked", "lion_scan"]
