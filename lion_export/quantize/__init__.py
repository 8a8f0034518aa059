"""INT8 quantization of an exported graph: QDQ nodes around the linear layers, calibrated on real inputs.

`quantize_onnx` (qdq.py) writes the file; calibration.py turns an inputs .npz or a Python callable into the
calibrator's batches (imported from there: it loads numpy and the input checks, which `--help` must not);
selection.py says which nodes are linear layers, and so which are not: the LION mixer.
"""
from .qdq import (CALIBRATION_METHODS, QUANTIZED_OPSET, QuantizeOptions, QuantizeResult, quantize_npz,
                   quantize_onnx)
from .selection import LINEAR_OP_TYPES, QuantizeError

__all__ = ["CALIBRATION_METHODS", "LINEAR_OP_TYPES", "QUANTIZED_OPSET", "QuantizeError", "QuantizeOptions",
           "QuantizeResult", "quantize_npz", "quantize_onnx"]
