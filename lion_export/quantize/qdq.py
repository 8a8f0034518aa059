"""Write the INT8 QDQ file: onnxruntime's quantize_static, held to the rules TensorRT's parser accepts.

- QDQ format (QuantizeLinear / DequantizeLinear pairs around float ops), the form TensorRT reads as explicit
  precision; per-channel symmetric INT8 weights, symmetric INT8 activations, biases left in float (TensorRT refuses
  int32 bias DequantizeLinear, asymmetric zero points and quantized non-weight constants).
- Only the linear layers (selection.py); the LION mixer, its decays and the LayerNorms stay fp32.
- The quantizer's activation pairs are then re-placed (placement.py) so that onnxruntime's CPU fusions take every
  linear layer: a pair per layer input, float MatMul / Gemm outputs, nothing quantized outside the linear layers.
- Opset 19 out: onnxruntime's quantizer output does not load at the exporter's newer opsets (a DequantizeLinear
  with no CPU kernel at 28; at 21 a QuantizeLinear whose output type and zero point disagree).
- The recurrent form's `lion.SelectiveScan` nodes run in the calibrator through their model-local function; the
  opset converter drops local functions and custom-domain imports, so they are put back before calibrating.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..atomic import atomic_output
from .selection import LINEAR_OP_TYPES, QuantizeError, check_float32, check_not_quantized, linear_layers

QUANTIZED_OPSET = 19
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
if TYPE_CHECKING:
    from ..verify.case_inputs import InputSpec
    from .calibration import CalibrationFeeds

TENSORRT_RULES = {"QuantizeBias": False, "ActivationSymmetric": True, "WeightSymmetric": True}
# MatMul / Gemm outputs stay float (placement.py says why); a Conv's output pair lets onnxruntime fuse QLinearConv
FLOAT_OUTPUTS = {"OpTypesToExcludeOutputQuantization": ["MatMul", "Gemm"]}


@dataclass(frozen=True)
class QuantizeOptions:
    """The user's choices: calibration method, op types to quantize, blocks left in float, and activation scales
    shared by every block for smaller TensorRT engines (block_scales.py)."""

    method: str = "minmax"
    op_types: tuple[str, ...] = LINEAR_OP_TYPES
    exclude_blocks: tuple[int, ...] = ()
    shared_block_scales: bool = False

    def check(self) -> None:
        if self.method not in CALIBRATION_METHODS:
            raise QuantizeError(f"calibration method {self.method!r}: choose among {', '.join(CALIBRATION_METHODS)}")


@dataclass(frozen=True)
class QuantizeResult:
    """What was written: the file, the layers quantized, the QuantizeLinear count, the calibration used, and with
    --shared-block-scales the number of roles whose scale the blocks share."""

    path: Path
    layers: int
    quantize_nodes: int
    calibration: str
    shared_roles: int | None = None

    def describe(self) -> str:
        shared = ("" if self.shared_roles is None else
                  f"; {self.shared_roles} activation scales shared by every block")
        return (f"wrote {self.path} (INT8 QDQ, opset {QUANTIZED_OPSET}: {self.layers} linear layers, "
                f"{self.quantize_nodes} QuantizeLinear; calibrated on {self.calibration}{shared})")


def to_quantizable_opset(model):
    """The model at opset 19, its custom-domain imports and local functions kept (the converter drops them)."""
    from onnx import version_converter

    try:
        converted = version_converter.convert_version(model, QUANTIZED_OPSET)
    except Exception as error:  # noqa: BLE001 - the converter raises bare RuntimeErrors from C++
        raise QuantizeError(f"cannot convert the graph to opset {QUANTIZED_OPSET}, which the quantizer's output "
                            f"needs ({' '.join(str(error).split())[:200]})") from None
    _carry_custom_parts(converted, model)
    return converted


def _carry_custom_parts(target, source) -> None:
    """Put back into `target` what the converter and the quantizer drop from `source`: the model-local functions
    (the recurrent form's lion.SelectiveScan) and the custom-domain opset imports they need."""
    if not target.functions:
        target.functions.extend(source.functions)
    domains = {op.domain for op in target.opset_import}
    target.opset_import.extend(op for op in source.opset_import if op.domain not in domains)


@contextmanager
def _quiet_quantizer():
    """onnxruntime's quantizer logs advice ("consider pre-processing") on the root logger, and its entropy and
    percentile calibrators print their histogram settings on stdout, where the command's result goes: silenced."""
    logging.disable(logging.WARNING)
    try:
        with open(os.devnull, "w") as devnull, redirect_stdout(devnull):
            yield
    finally:
        logging.disable(logging.NOTSET)


def quantize_onnx(source: str | Path, output: str | Path,
                  calibration: "CalibrationFeeds | Callable[[list[InputSpec]], CalibrationFeeds]",
                  options: QuantizeOptions = QuantizeOptions(),
                  progress: Callable[[str], None] | None = None) -> QuantizeResult:
    """Quantize the float export `source` to the INT8 QDQ file `output` (written atomically).

    `calibration`: checked feeds, or a function of the graph's input specs returning them (feeds_from_npz with its
    path bound, say), so the data is checked against the graph before any work.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from ..graph_summary import load_onnx_model
    from .calibration import data_reader
    from ..runners.feeds import graph_input_specs

    options.check()
    model = load_onnx_model(source)
    check_not_quantized(model)
    check_float32(model)
    nodes = linear_layers(model, options.op_types, options.exclude_blocks)
    if not nodes:
        raise QuantizeError(f"{source}: no linear layer to quantize (no {'/'.join(options.op_types)} node reads an "
                            "initializer weight outside the excluded blocks)")
    if callable(calibration):
        calibration = calibration(graph_input_specs(model))
    if progress is not None:
        progress(f"converting to opset {QUANTIZED_OPSET}")
    model = to_quantizable_opset(model)
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[options.method]
    output = Path(output)
    with atomic_output(output) as tmp, _quiet_quantizer():
        quantize_static(model, tmp, data_reader(calibration, progress), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=list(options.op_types), per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, nodes_to_quantize=nodes,
                        calibrate_method=method, extra_options={**TENSORRT_RULES, **FLOAT_OUTPUTS})
        if progress is not None:
            progress("writing")
        quantize_nodes, shared_roles = _restore(tmp, model, nodes, options.shared_block_scales)
    return QuantizeResult(output, len(nodes), quantize_nodes, calibration.describe(), shared_roles)


def quantize_npz(source: str | Path, output: str | Path, calibration: str | Path | None,
                 options: QuantizeOptions = QuantizeOptions(),
                 progress: Callable[[str], None] | None = None) -> QuantizeResult:
    """`quantize_onnx` calibrated on an inputs .npz (the command line's form); no .npz is an error, not noise."""
    from functools import partial

    from .calibration import feeds_from_npz

    if calibration is None:
        raise QuantizeError("give --calibration DATA.npz (real inputs: INT8 scales are never fitted to noise)")
    if Path(output).resolve() == Path(source).resolve():
        raise QuantizeError(f"-o {output} is the input file; write the INT8 file to another name")
    return quantize_onnx(source, output, partial(feeds_from_npz, calibration), options, progress)


def _restore(path: Path, source, nodes: list[str], shared_block_scales: bool) -> tuple[int, int | None]:
    """Place the activation pairs for onnxruntime's fusions (placement.py), share their scales between blocks when
    asked (block_scales.py) and put back what the quantizer may drop (local functions, custom opset imports, metadata);
    returns the QuantizeLinear count and the number of roles shared (None: not asked)."""
    import onnx

    from .placement import place_activation_pairs
    from .block_scales import share_block_scales

    quantized = onnx.load(str(path))
    place_activation_pairs(quantized, nodes)
    shared = share_block_scales(quantized) if shared_block_scales else None
    _carry_custom_parts(quantized, source)
    present = {prop.key for prop in quantized.metadata_props}
    quantized.metadata_props.extend(prop for prop in source.metadata_props if prop.key not in present)
    onnx.save(quantized, str(path))
    return sum(node.op_type == "QuantizeLinear" for node in quantized.graph.node), shared


__all__ = ["CALIBRATION_METHODS", "QUANTIZED_OPSET", "QuantizeOptions", "QuantizeResult", "quantize_npz",
           "quantize_onnx", "to_quantizable_opset"]
