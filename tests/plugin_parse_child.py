"""Child process of tests/test_plugin.py: parse one ONNX file with the SelectiveScan plugin registered, describe
every plugin layer, optionally build an engine; prints one JSON line. Run through tensorrt_rtx_child.run_child."""
from __future__ import annotations

import json
import sys

import tensorrt_rtx_bindings as trt

from lion_export import plugins


def _profile(builder: trt.Builder, network: trt.INetworkDefinition) -> trt.IOptimizationProfile:
    """Every dynamic axis from 1 (min) to 2 (batch) or 16 (anything else), optimised at the max."""
    profile = builder.create_optimization_profile()
    for index in range(network.num_inputs):
        tensor = network.get_input(index)
        high = tuple((2 if axis == 0 else 16) if d == -1 else d for axis, d in enumerate(tensor.shape))
        low = tuple(1 if d == -1 else d for d in tensor.shape)
        profile.set_shape(tensor.name, low, high, high)
    return profile


def _described(tensor: trt.ITensor) -> list:
    return [tensor.dtype.name, list(tensor.shape)]


def main(path: str, build: bool) -> dict:
    plugins.register(trt)
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    parsed = parser.parse_from_file(path)
    result = {"parsed": parsed, "errors": [parser.get_error(i).desc() for i in range(parser.num_errors)],
              "layers": network.num_layers, "plugins": []}
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        if layer.type != trt.LayerType.PLUGIN_V3:
            continue
        layer.__class__ = trt.IPluginV3Layer
        plugin = layer.plugin
        result["plugins"].append({
            "name": plugin.plugin_name, "namespace": plugin.plugin_namespace, "version": plugin.plugin_version,
            "normalize": plugin.fields.normalize, "eps": plugin.fields.eps,
            "inputs": [_described(layer.get_input(i)) for i in range(layer.num_inputs)],
            "output": _described(layer.get_output(0))})
    if parsed and build:
        config = builder.create_builder_config()
        config.add_optimization_profile(_profile(builder, network))
        engine = builder.build_serialized_network(network, config)
        result["engine_bytes"] = None if engine is None else engine.nbytes
        # the engine names each plugin and holds its serialized fields (what a runtime hands back to the creator)
        blob = b"" if engine is None else bytes(engine)
        result["engine_mentions"] = {word: blob.count(word.encode()) for word in ("V3ONE", "normalize", "eps")}
    return result


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], build="--build" in sys.argv[2:])))
