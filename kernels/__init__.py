"""Triton kernels behind `lion_attention(..., backend="triton")`, and their ahead-of-time descriptions."""
from lion_export.kernels.autograd import lion_chunked
from lion_export.kernels.scan import lion_scan

__all__ = ["lion_chunked", "lion_scan"]
