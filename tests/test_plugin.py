"""The `lion::SelectiveScan` TensorRT plugin with real TensorRT-RTX (no mocks): its build-time methods called
through the bindings' own objects, and real recurrent exports parsed and built to engines with it.

Parses run in a child process (tests/tensorrt_rtx_child.py: the parser defect could abort the process). Nothing here
needs a GPU except the enqueue test, which launches the kernel into torch CUDA buffers as TensorRT would.
"""
from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from lion_export import create_model, plugins
from lion_export.export import export_onnx
from lion_export import scan_op as node
from tensorrt_rtx_child import run_child, tensorrt_rtx_available

pytestmark = pytest.mark.skipif(not tensorrt_rtx_available(), reason="needs TensorRT-RTX (tensorrt_rtx_bindings)")

CHILD = Path(__file__).parent / "plugin_parse_child.py"
TEXT = {"depth": 2, "dim": 16, "num_heads": 2, "vocab_size": 50, "max_len": 64}


@pytest.fixture(scope="module")
def trt():
    import tensorrt_rtx_bindings

    plugins.register(tensorrt_rtx_bindings)
    return tensorrt_rtx_bindings


@pytest.fixture(scope="module")
def creator(trt):
    return trt.get_plugin_registry().get_creator(plugins.PLUGIN_NAME, plugins.PLUGIN_VERSION,
                                                 plugins.PLUGIN_NAMESPACE)


def _fields(trt, normalize, eps):
    """A field collection as the parser makes it from the node's attributes (INT -> int32, FLOAT -> float32)."""
    return trt.PluginFieldCollection([
        trt.PluginField("normalize", np.array([normalize], dtype=np.int32), trt.PluginFieldType.INT32),
        trt.PluginField("eps", np.array([eps], dtype=np.float32), trt.PluginFieldType.FLOAT32)])


def _desc(trt, dtype, dims=(2, 3, 5, 8), fmt=None):
    desc = trt.DynamicPluginTensorDesc()
    tensor = trt.PluginTensorDesc()
    tensor.type = dtype
    tensor.format = trt.TensorFormat.LINEAR if fmt is None else fmt
    tensor.dims = trt.Dims(list(dims))
    desc.desc = tensor
    desc.min = desc.opt = desc.max = trt.Dims(list(dims))
    return desc


def test_register_is_idempotent_and_registers_a_v3one_creator(trt, creator):
    plugins.register(trt)
    plugins.register(trt)
    assert isinstance(creator, trt.IPluginCreatorV3One)
    assert (creator.name, creator.plugin_namespace, creator.plugin_version) == ("SelectiveScan", "lion", "1")
    assert [(f.name, f.type) for f in creator.field_names] == [("normalize", trt.PluginFieldType.INT32),
                                                              ("eps", trt.PluginFieldType.FLOAT32)]
    same = [c for c in trt.get_plugin_registry().all_creators
            if (c.name, c.plugin_namespace) == ("SelectiveScan", "lion")]
    assert len(same) == 1


def test_fields_are_read_from_the_node_and_survive_serialization_and_clone(trt, creator):
    plugin = creator.create_plugin("scan", _fields(trt, 0, 1e-5), trt.TensorRTPhase.BUILD)
    assert plugin.fields.normalize is False
    assert plugin.fields.eps == pytest.approx(1e-5, rel=1e-7)
    serialized = plugin.get_fields_to_serialize()
    assert [(f.name, f.type) for f in serialized] == [("normalize", trt.PluginFieldType.INT32),
                                                     ("eps", trt.PluginFieldType.FLOAT32)]
    restored = creator.create_plugin("scan", serialized, trt.TensorRTPhase.RUNTIME)
    assert restored.fields == plugin.fields
    copy = plugin.clone()
    assert copy is not plugin and copy.fields == plugin.fields
    assert (copy.plugin_name, copy.plugin_namespace, copy.plugin_version, copy.num_outputs) == \
        ("SelectiveScan", "lion", "1", 1)
    assert plugin.attach_to_context(None).fields == plugin.fields


def test_missing_attributes_take_the_nodes_defaults_and_bad_ones_are_refused(trt, creator):
    plugin = creator.create_plugin("scan", trt.PluginFieldCollection([]), trt.TensorRTPhase.BUILD)
    assert (plugin.fields.normalize, plugin.fields.eps) == (bool(node.DEFAULT_NORMALIZE), node.DEFAULT_EPS)
    for normalize, eps in ((2, 1e-6), (1, -1.0), (1, float("nan"))):
        with pytest.raises(ValueError, match="normalize|eps"):
            creator.create_plugin("scan", _fields(trt, normalize, eps), trt.TensorRTPhase.BUILD)


def test_output_type_is_vs(trt, creator):
    plugin = creator.create_plugin("scan", _fields(trt, 1, 1e-6), trt.TensorRTPhase.BUILD)
    dt = trt.DataType
    for value in (dt.FLOAT, dt.HALF, dt.BF16):
        assert plugin.get_output_data_types([value, value, value, dt.FLOAT]) == [value]
    with pytest.raises(ValueError, match="4 inputs"):
        plugin.get_output_data_types([dt.FLOAT] * 3)


def test_format_combinations(trt, creator):
    """Every (q, k, v, log_decay, y) type combination over five types: exactly the documented ones pass."""
    plugin = creator.create_plugin("scan", _fields(trt, 1, 1e-6), trt.TensorRTPhase.BUILD)
    dt = trt.DataType
    candidates = (dt.FLOAT, dt.HALF, dt.BF16, dt.INT32, dt.INT8)
    accepted = set()
    for types in itertools.product(candidates, repeat=5):
        descs = [_desc(trt, t) for t in types]
        if all(plugin.supports_format_combination(pos, descs, 4) for pos in range(5)):
            accepted.add(types)
    assert accepted == {(t, t, t, dt.FLOAT, t) for t in (dt.FLOAT, dt.HALF, dt.BF16)}
    descs = [_desc(trt, dt.FLOAT, fmt=trt.TensorFormat.CHW4)] + [_desc(trt, dt.FLOAT) for _ in range(4)]
    assert not plugin.supports_format_combination(0, descs, 4)


def test_workspace_holds_both_scratch_buffers_at_the_profiles_max(trt, creator):
    """B=2, H=3, L=100, dk=dv=40: num (B, H, L, dv) fp32 and den (B, H, ceil(40 / 32) = 2 tiles, L) fp32,
    each rounded up to 256 bytes."""
    plugin = creator.create_plugin("scan", _fields(trt, 1, 1e-6), trt.TensorRTPhase.BUILD)
    dims = (2, 3, 100, 40)
    inputs = [_desc(trt, trt.DataType.HALF, dims), _desc(trt, trt.DataType.HALF, dims),
              _desc(trt, trt.DataType.HALF, dims), _desc(trt, trt.DataType.FLOAT, dims[:3])]
    outputs = [_desc(trt, trt.DataType.HALF, dims)]
    plugin.configure_plugin(inputs, outputs)

    def rounded(n):
        return math.ceil(n / 256) * 256

    assert plugin.get_workspace_size(inputs, outputs) == rounded(2 * 3 * 100 * 40 * 4) + rounded(2 * 3 * 2 * 100 * 4)


@pytest.mark.parametrize("shapes, message", [
    ([(1, 1, 8, 300)] * 3 + [(1, 1, 8)], "head dims"),
    ([(1, 2, 8, 16), (1, 2, 8, 32), (1, 2, 8, 16), (1, 2, 8)], "takes q, k"),      # k's dk differs
    ([(1, 2, 8, 16), (1, 2, 8, 16), (1, 2, 9, 16), (1, 2, 8)], "takes q, k"),      # v's L differs
    ([(1, 2, 8, 16), (1, 2, 8, 16), (1, 2, 8, 16), (1, 3, 8)], "takes q, k"),      # log_decay's H differs
    ([(1, 2, 8, 16), (1, 2, 8, 16), (1, 2, 8, 16), (1, 2, 8, 1)], "rank 4"),       # log_decay of rank 4
])
def test_configure_and_shape_change_refuse_shapes_the_kernel_cannot_take(trt, creator, shapes, message):
    plugin = creator.create_plugin("scan", _fields(trt, 1, 1e-6), trt.TensorRTPhase.BUILD)
    inputs = [_desc(trt, trt.DataType.FLOAT, shape) for shape in shapes]
    outputs = [_desc(trt, trt.DataType.FLOAT, shapes[2])]
    with pytest.raises(ValueError, match=message):
        plugin.configure_plugin(inputs, outputs)
    with pytest.raises(ValueError, match=message):
        plugin.on_shape_change([d.desc for d in inputs], [d.desc for d in outputs])


def test_unknown_dims_are_accepted_until_known(trt, creator):
    plugin = creator.create_plugin("scan", _fields(trt, 1, 1e-6), trt.TensorRTPhase.BUILD)
    inputs = [_desc(trt, trt.DataType.FLOAT, (-1, 2, -1, 16)) for _ in range(3)] + \
        [_desc(trt, trt.DataType.FLOAT, (-1, 2, -1))]
    plugin.on_shape_change([d.desc for d in inputs], [inputs[2].desc])


@pytest.mark.parametrize("normalize", [True, False])
def test_scan_into_a_workspace_of_the_plugins_size_matches_the_reference(trt, creator, normalize):
    """enqueue's work once TensorRT's pointers are tensors (here CPU tensors under the Triton interpreter): the
    scratch carved out of exactly get_workspace_size bytes, y against the float64 reference."""
    from reference import reference_attention

    from lion_export.plugins.selective_scan import scan_into

    torch.manual_seed(1)
    batch, heads, length, dk, dv = 2, 2, 9, 8, 40                    # dv 40: two dv tiles
    q, k = (torch.randn(batch, heads, length, dk).sigmoid() for _ in range(2))
    v = torch.randn(batch, heads, length, dv)
    a = -torch.rand(batch, heads, length)
    y = torch.full_like(v, float("nan"))
    plugin = creator.create_plugin("scan", _fields(trt, int(normalize), 1e-6), trt.TensorRTPhase.RUNTIME)
    descs = [_desc(trt, trt.DataType.FLOAT, x.shape) for x in (q, k, v, a)]
    workspace = torch.empty(plugin.get_workspace_size(descs, [_desc(trt, trt.DataType.FLOAT, y.shape)]),
                            dtype=torch.uint8)
    scan_into(plugin.fields, q, k, v, a, y, workspace)
    expected = reference_attention(*(x.double() for x in (q, k, v, a)), normalize=normalize, eps=1e-6)
    assert (y.double() - expected).abs().max() <= 1e-5 * expected.abs().max()


# ---------------------------------------------------------------------------------------------------------------
# real exports through TensorRT-RTX's ONNX parser and builder


@pytest.fixture(scope="module")
def recurrent_exports(tmp_path_factory):
    directory = tmp_path_factory.mktemp("plugin")
    torch.manual_seed(0)
    model = create_model("encoder-tiny", mask="selective", **TEXT).eval()
    return directory, {dtype: export_onnx(model, directory / f"text_{dtype}.onnx", form="recurrent", seq_len=12,
                                          dtype=dtype) for dtype in ("fp32", "fp16")}


@pytest.mark.parametrize("dtype", ["fp32", "fp16"])
def test_parser_binds_one_plugin_per_mixer_and_the_engine_builds(recurrent_exports, dtype):
    directory, paths = recurrent_exports
    nodes = [n for n in onnx.load(paths[dtype]).graph.node if n.op_type == node.OP_TYPE]
    assert len(nodes) == TEXT["depth"]
    result = run_child(CHILD, str(paths[dtype]), "--build", scratch=directory)
    assert result["parsed"], result["errors"]
    assert len(result["plugins"]) == TEXT["depth"]
    value = "FLOAT" if dtype == "fp32" else "HALF"
    for bound, source in zip(result["plugins"], nodes):
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in source.attribute}
        assert (bound["name"], bound["namespace"], bound["version"]) == ("SelectiveScan", "lion", "1")
        assert bound["normalize"] == bool(attrs["normalize"])
        assert bound["eps"] == pytest.approx(attrs["eps"], rel=1e-7)
        assert [t for t, _ in bound["inputs"]] == [value, value, value, "FLOAT"]
        assert bound["output"] == [value, bound["inputs"][2][1]]           # shaped and typed like v
    assert result["engine_bytes"] > 0
    assert all(count >= TEXT["depth"] for count in result["engine_mentions"].values()), result["engine_mentions"]


def test_a_node_with_wrong_inputs_fails_the_parse_with_the_plugins_message(recurrent_exports):
    directory, _ = recurrent_exports
    inputs = [onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, ["B", 2, "L", 8]) for n in "qkv"]
    scan = onnx.helper.make_node(node.OP_TYPE, list("qkv"), ["y"], domain=node.DOMAIN,
                                 **node.node_attributes(True, 1e-6))
    graph = onnx.helper.make_graph([scan], "three_inputs", inputs,
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)])
    path = directory / "three_inputs.onnx"
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18),
                                                           onnx.helper.make_opsetid(node.DOMAIN, 1)]), path)
    result = run_child(CHILD, str(path), scratch=directory)
    assert not result["parsed"]
    assert any("SelectiveScan" in error or "getOutputDataTypes" in error for error in result["errors"])


# ---------------------------------------------------------------------------------------------------------------
# enqueue: the kernel launched into caller-owned CUDA buffers through the plugin, as TensorRT calls it


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_enqueue_writes_the_bidirectional_recurrence_into_tensorrts_buffers(trt, creator, dtype):
    from reference import reference_attention

    torch.manual_seed(0)
    batch, heads, length, dk, dv = 2, 3, 37, 16, 40                  # dv 40: two dv tiles, padded head dims
    q, k = (torch.randn(batch, heads, length, dk, device="cuda").sigmoid().to(dtype) for _ in range(2))
    v = torch.randn(batch, heads, length, dv, device="cuda").to(dtype)
    a = -torch.rand(batch, heads, length, device="cuda") * 0.5
    y = torch.full_like(v, float("nan"))
    plugin = creator.create_plugin("scan", _fields(trt, 1, 1e-6), trt.TensorRTPhase.RUNTIME)
    trt_type = {torch.float32: trt.DataType.FLOAT, torch.float16: trt.DataType.HALF,
                torch.bfloat16: trt.DataType.BF16}[dtype]
    inputs = [_desc(trt, trt_type, x.shape) for x in (q, k, v)] + [_desc(trt, trt.DataType.FLOAT, a.shape)]
    outputs = [_desc(trt, trt_type, y.shape)]
    workspace = torch.empty(plugin.get_workspace_size(inputs, outputs), dtype=torch.uint8, device="cuda")
    stream = torch.cuda.Stream()
    plugin.enqueue([d.desc for d in inputs], [d.desc for d in outputs], [x.data_ptr() for x in (q, k, v, a)],
                   [y.data_ptr()], workspace.data_ptr(), stream.cuda_stream)
    stream.synchronize()
    expected = reference_attention(*(x.double().cpu() for x in (q, k, v, a)), normalize=True, eps=1e-6)
    tolerance = {torch.float32: 1e-4, torch.float16: 5e-3, torch.bfloat16: 3e-2}[dtype]
    assert (y.double().cpu() - expected).abs().max() <= tolerance * expected.abs().max()


def test_tensorrt_types_map_to_torch_dtypes(trt):
    from lion_export.plugins.device_buffers import torch_dtype

    assert [torch_dtype(t) for t in (trt.DataType.FLOAT, trt.DataType.HALF, trt.DataType.BF16)] == \
        [torch.float32, torch.float16, torch.bfloat16]
    with pytest.raises(ValueError, match="INT8"):
        torch_dtype(trt.DataType.INT8)
