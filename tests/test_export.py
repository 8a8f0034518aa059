"""export_onnx and the lion.SelectiveScan node: graph structure, numbers against independent references, files.

The CLI tests (test_cli_export.py) run every variant x mode x dtype through verification; these check what the
verification cannot see: the custom node's function on its own against the float64 reference (onnxruntime with
and without graph optimisations, and the ONNX reference evaluator), the fp32 islands of an fp16 graph, metadata,
opset policy, static shapes, external data and that a failed write leaves nothing behind.
"""
from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator
from reference import reference_attention

from lion_export import checkpoint_sha256, create_model, save_checkpoint
from lion_export.export import DEFAULT_OPSET, MIN_OPSET, ExportError, OpsetError, export_onnx, resolve_opset
from lion_export.export import onnx_export
from lion_export.export.selective_scan import selective_scan_function
from lion_export.scan_op import DOMAIN, DOMAIN_VERSION, INPUTS, OP_TYPE, PLUGIN_NAMESPACE, node_attributes

VISION = {"depth": 1, "dim": 16, "num_heads": 2, "img_size": 32, "patch_size": 8, "num_classes": 5}
TEXT = {"depth": 2, "dim": 16, "num_heads": 2, "vocab_size": 50, "max_len": 64}
LEVELS = {"disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}


def _session(model: onnx.ModelProto | str, level: str = "all") -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = LEVELS[level]
    source = model if isinstance(model, str) else model.SerializeToString()
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def test_default_opset_is_the_newest_onnxruntime_runs():
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

    newest_kernel = max(d.version_range[0] for d in ort_state.get_all_opkernel_def()
                        if d.domain in ("", "ai.onnx") and d.provider == "CPUExecutionProvider")
    assert DEFAULT_OPSET == min(newest_kernel, onnx.defs.onnx_opset_version()) >= MIN_OPSET == 18
    assert resolve_opset(None) == DEFAULT_OPSET and resolve_opset(20) == 20
    for bad in (17, 11, onnx.defs.onnx_opset_version() + 1, "20", True):
        with pytest.raises(OpsetError):
            resolve_opset(bad)


# ---------------------------------------------------------------------------------------------------------------
# the node's local function alone


def _single_node_model(normalize: int, float_type: int, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    node = helper.make_node(OP_TYPE, list(INPUTS), ["y"], domain=DOMAIN, **node_attributes(normalize, 1e-6))
    dims = {"q": ["B", "H", "L", 3], "k": ["B", "H", "L", 3], "v": ["B", "H", "L", 4]}
    inputs = [helper.make_tensor_value_info(n, float_type, dims[n]) for n in ("q", "k", "v")]
    inputs.append(helper.make_tensor_value_info("log_decay", TensorProto.FLOAT, ["B", "H", "L"]))
    graph = helper.make_graph([node], "selective_scan", inputs,
                              [helper.make_tensor_value_info("y", float_type, ["B", "H", "L", 4])])
    return helper.make_model(graph, functions=[selective_scan_function(opset)],
                             opset_imports=[helper.make_opsetid("", opset),
                                            helper.make_opsetid(DOMAIN, DOMAIN_VERSION)])


@pytest.mark.parametrize("length", [1, 6, 16, 37])   # one token, part of a block, one block, several
@pytest.mark.parametrize("normalize", [1, 0])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_selective_scan_function_matches_the_float64_reference(length, normalize, dtype):
    model = _single_node_model(normalize, helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))
    onnx.checker.check_model(model, full_check=True)
    rng = np.random.default_rng(length)
    # positive feature-mapped q, k (as LION's phi gives) and per-token decays in (0, 1]
    q, k = (rng.uniform(0.1, 1.0, (2, 2, length, 3)).astype(dtype) for _ in range(2))
    v = rng.standard_normal((2, 2, length, 4)).astype(dtype)
    log_decay = np.log(rng.uniform(0.5, 1.0, (2, 2, length))).astype(np.float32)
    feed = {"q": q, "k": k, "v": v, "log_decay": log_decay}
    expected = reference_attention(*(torch.from_numpy(x.astype(np.float64)) for x in (q, k, v, log_decay)),
                                   normalize=bool(normalize)).numpy()
    # fp16 in and out, fp32 inside: the output rounding (2^-11 relative) is the only fp16 error
    atol, rtol = (1e-5, 1e-5) if dtype == np.float32 else (2e-3, 2e-3)
    results = {level: _session(model, level).run(None, feed)[0] for level in LEVELS}
    results["reference evaluator"] = ReferenceEvaluator(model).run(None, feed)[0]
    for name, actual in results.items():
        assert actual.dtype == dtype, name
        np.testing.assert_allclose(actual.astype(np.float64), expected, atol=atol, rtol=rtol, err_msg=name)


def test_selective_scan_state_does_not_grow_with_length():
    """Both sweeps are one forward Scan over a batch of 2B (forward + flipped sequences) stepping over blocks of
    BLOCK tokens and carrying one state S (2B, H, dk, dv+1), the normaliser z folded in as its last column. Its
    per-step output is q^T S for the block's tokens (2B, H, BLOCK, dv+1), so memory is O(dk dv) state plus
    O(L (dv + BLOCK)) per-token values, never a per-token state."""
    function = selective_scan_function(DEFAULT_OPSET)
    scans = [n for n in function.node if n.op_type == "Scan"]
    assert len(scans) == 1
    attrs = {a.name: a for a in scans[0].attribute}
    n_scan_inputs = attrs["num_scan_inputs"].i
    n_states = len(scans[0].input) - n_scan_inputs
    assert n_states == 1 and "scan_input_directions" not in attrs       # forward scan only
    body = attrs["body"].g
    assert [len(o.type.tensor_type.shape.dim) for o in body.output] == [4, 4]
    assert sorted(n.op_type for n in body.node) == ["Add", "MatMul", "MatMul", "Mul"]   # no per-step constants


@pytest.mark.parametrize("decays", ["1e-6 to 1 - 1e-6", "saturated gates"])
def test_selective_scan_function_is_exact_with_extreme_decays(decays):
    """Blocks of tokens whose lambdas jump between extremes: 1e-6 and 1 - 1e-6, or saturated gates (log decays
    log sigmoid(-z) for z from -60 to 60, down to -60 per token). Every exponent in the function is a direct sum
    within a block, so the result matches float64 to fp32 rounding (measured 7e-7 and 1.2e-7; with the intra-block
    exponents taken as differences of the block's prefix sums, the saturated case was 4.6e-6)."""
    model = _single_node_model(1, TensorProto.FLOAT)
    rng = np.random.default_rng(0)
    length = 300
    q, k = (rng.uniform(0.1, 1.0, (2, 2, length, 3)).astype(np.float32) for _ in range(2))
    v = rng.standard_normal((2, 2, length, 4)).astype(np.float32)
    pick = rng.uniform(size=(2, 2, length))
    if decays == "saturated gates":
        z = np.where(pick < 0.3, 60.0, np.where(pick < 0.5, -60.0, rng.uniform(-60, 60, (2, 2, length))))
        log_decay = -np.logaddexp(0.0, z)                                   # log sigmoid(-z), in float64
        bound = 1e-6
    else:
        lo, hi = np.log(1e-6), np.log1p(-1e-6)
        log_decay = np.where(pick < 0.3, lo, np.where(pick < 0.6, hi, rng.uniform(lo, hi, (2, 2, length))))
        bound = 5e-6
    feed = {"q": q, "k": k, "v": v, "log_decay": log_decay.astype(np.float32)}
    actual = _session(model).run(None, feed)[0]
    expected = reference_attention(*(torch.from_numpy(x.astype(np.float64)) for x in feed.values())).numpy()
    assert np.isfinite(actual).all()
    assert np.abs(actual - expected).max() <= bound * np.abs(expected).max()


# ---------------------------------------------------------------------------------------------------------------
# a recurrent export of a tiny text encoder (one export, several checks)


@pytest.fixture(scope="module")
def recurrent_text(tmp_path_factory):
    directory = tmp_path_factory.mktemp("recurrent")
    torch.manual_seed(0)
    model = create_model("encoder-tiny", mask="selective", **TEXT).eval()
    checkpoint = save_checkpoint(model, directory / "text.pt")
    path = export_onnx(model, directory / "text.onnx", form="recurrent", seq_len=12, checkpoint_path=checkpoint)
    return model, checkpoint, onnx.load(path)


def test_recurrent_export_has_one_custom_node_per_mixer_and_its_function(recurrent_text):
    _, _, proto = recurrent_text
    scans = [n for n in proto.graph.node if n.domain == DOMAIN]
    assert [n.op_type for n in scans] == [OP_TYPE] * TEXT["depth"]
    assert [n.name for n in scans] == [f"{OP_TYPE}_{i}" for i in range(TEXT["depth"])]
    for node in scans:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        assert attrs == {"normalize": 0, "eps": pytest.approx(1e-6), "plugin_namespace": PLUGIN_NAMESPACE.encode()}
        assert len(node.input) == 4
    assert [(f.domain, f.name) for f in proto.functions] == [(DOMAIN, OP_TYPE)]
    opsets = {o.domain: o.version for o in proto.opset_import}
    assert opsets == {"": DEFAULT_OPSET, DOMAIN: DOMAIN_VERSION}
    assert {o.domain: o.version for o in proto.functions[0].opset_import} == {"": DEFAULT_OPSET}
    assert not any(n.op_type in ("Loop", "Scan") for n in proto.graph.node)   # the recurrence is only in the function


def test_recurrent_export_runs_in_the_reference_evaluator_and_onnxruntime(recurrent_text):
    model, _, proto = recurrent_text
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(0, TEXT["vocab_size"], (2, 5), generator=generator)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    with torch.no_grad():
        expected = model(ids, mask).numpy()
    feed = {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
    results = {level: _session(proto, level).run(None, feed)[0] for level in LEVELS}
    results["reference evaluator"] = ReferenceEvaluator(proto).run(None, feed)[0]
    keep = mask.numpy().astype(bool)                                   # padded positions' outputs are undefined
    for name, actual in results.items():
        np.testing.assert_allclose(actual[keep], expected[keep], atol=1e-5, rtol=1e-4, err_msg=name)


def test_metadata_names_the_export_and_its_source(recurrent_text):
    model, checkpoint, proto = recurrent_text
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["lion_export_version"] == __import__("lion_export").__version__
    assert (meta["mode"], meta["chunk_size"], meta["dtype"]) == ("recurrent", "64", "fp32")
    assert (meta["opset"], meta["variants"], meta["trace_seq_len"]) == (str(DEFAULT_OPSET), "LION-S", "12")
    assert meta["checkpoint_sha256"] == checkpoint_sha256(checkpoint)
    assert json.loads(meta["model_config"]) == {**model.config.to_dict(), "form": "recurrent"}
    assert model.config.form == "parallel" and all(                 # the caller's model is left as it was
        m.form == "parallel" for m in model.modules() if hasattr(m, "form"))


# ---------------------------------------------------------------------------------------------------------------
# each distinct block traced once, repeated in the graph (block_stack.py)


def test_blocks_are_traced_once_per_program_and_repeated_with_their_own_weights(tmp_path):
    """Depth 3, the middle block a LION-S block among LION-LIT ones: two programs traced, three blocks in the
    graph, each reading its own weights (random, so a copy reading another block's would not match eager)."""
    from lion_export.export.block_stack import BOUNDARY_DOMAIN, plan_stack

    torch.manual_seed(0)
    model = create_model("vit-tiny", mask="lit", **{**VISION, "depth": 3}).eval()
    model.blocks[1] = create_model("vit-tiny", mask="selective", **VISION).blocks[0]
    assert plan_stack(model.blocks).representatives == (0, 1)
    assert plan_stack(model.blocks).program_of == (0, 1, 0)
    proto = onnx.load(export_onnx(model, tmp_path / "m.onnx", form="chunked", chunk_size=8))
    assert not any(n.domain == BOUNDARY_DOMAIN for n in proto.graph.node)
    assert BOUNDARY_DOMAIN not in {o.domain for o in proto.opset_import}
    norms = [n.name for n in proto.graph.node if n.op_type == "LayerNormalization"]
    assert [name.split(".node_")[0] for name in norms] == [f"blocks.{i}" for i in (0, 0, 1, 1, 2, 2)] + [norms[-1]]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["variants"] == "LION-LIT,LION-S"
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = model(images).numpy()
    np.testing.assert_allclose(_session(proto).run(None, {"images": images.numpy()})[0], expected,
                               atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------------------------------------------------------
# dtypes, shapes and files


def _inferred_types(proto: onnx.ModelProto) -> dict[str, int]:
    graph = onnx.shape_inference.infer_shapes(proto).graph
    return {v.name: v.type.tensor_type.elem_type for v in (*graph.value_info, *graph.input, *graph.output)}


@pytest.mark.parametrize("mode", ["chunked", "recurrent"])
def test_fp16_graph_keeps_decays_in_fp32(tmp_path, mode):
    torch.manual_seed(0)
    model = create_model("vit-tiny", mask="selective", **VISION).eval()
    proto = onnx.load(export_onnx(model, tmp_path / "m.onnx", form=mode, dtype="fp16", chunk_size=8))
    assert proto.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT16
    assert proto.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT16
    types = _inferred_types(proto)
    if mode == "chunked":
        decay_ops = [n for n in proto.graph.node if n.op_type in ("CumSum", "Exp")]
        assert decay_ops and all(types[n.input[0]] == TensorProto.FLOAT for n in decay_ops)
    else:
        for node in (n for n in proto.graph.node if n.domain == DOMAIN):
            assert [types[name] for name in node.input] == [TensorProto.FLOAT16] * 3 + [TensorProto.FLOAT]
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = model(images).numpy()
    actual = _session(proto).run(None, {"images": images.half().numpy()})[0]
    np.testing.assert_allclose(actual.astype(np.float32), expected, atol=5e-3, rtol=1e-2)


@pytest.mark.parametrize("mode", ["chunked", "recurrent"])
def test_vision_export_without_position_embedding_keeps_image_sides_dynamic(tmp_path, mode):
    """H and W are dynamic multiples of the patch: one file runs square and non-square images whose token counts
    (17, 11, 21; none a multiple of the chunk, 8) span two or three chunks, and matches eager PyTorch at each."""
    torch.manual_seed(0)
    model = create_model("vit-tiny", mask="selective", pos_embed=False, **VISION).eval()
    path = export_onnx(model, tmp_path / "m.onnx", form=mode, chunk_size=8)
    onnx.checker.check_model(str(path), full_check=True)
    proto = onnx.load(path)
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "8*height_patches", "8*width_patches"]
    session = _session(str(path))
    for batch, height, width in [(2, 32, 32), (1, 16, 40), (3, 32, 40)]:
        images = torch.randn(batch, 3, height, width)
        with torch.no_grad():
            expected = model(images).numpy()
        np.testing.assert_allclose(session.run(None, {"images": images.numpy()})[0], expected, atol=1e-5, rtol=1e-4)


def test_vision_trace_example_follows_seq_len_without_position_embedding():
    from lion_export.export.signature import graph_signature

    free = create_model("vit-tiny", mask="lit", pos_embed=False, **VISION).eval()
    signature = graph_signature(free, batch=2, seq_len=13, dtype=torch.float32, static=False)
    assert signature.example_inputs[0].shape == (2, 3, 24, 32) and signature.seq_len == 13
    with pytest.raises(ValueError, match="at least 2x2 patches; the example has 1x7"):
        graph_signature(free, batch=2, seq_len=8, dtype=torch.float32, static=False)
    static = graph_signature(free, batch=1, seq_len=8, dtype=torch.float32, static=True)
    assert static.example_inputs[0].shape == (1, 3, 8, 56) and static.dynamic_shapes is None


def test_static_export_with_external_data(tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_export, "PROTOBUF_LIMIT_BYTES", 0)         # as if the weights exceeded 2 GiB
    torch.manual_seed(0)
    model = create_model("vit-tiny", mask="decay", **VISION).eval()
    path = export_onnx(model, tmp_path / "m.onnx", form="parallel", static=True, batch=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data"]
    onnx.checker.check_model(str(path), full_check=True)
    proto = onnx.load(path, load_external_data=False)
    assert any(t.data_location == TensorProto.EXTERNAL for t in proto.graph.initializer)
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == [3, 3, 32, 32]
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = model(images).numpy()
    np.testing.assert_allclose(_session(str(path)).run(None, {"images": images.numpy()})[0], expected,
                               atol=1e-5, rtol=1e-4)


def test_a_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def disk_full(proto, path, **kwargs):
        with open(path, "wb") as handle:
            handle.write(proto.SerializeToString()[:100])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(onnx_export.onnx, "save_model", disk_full)
    model = create_model("vit-tiny", **VISION).eval()
    with pytest.raises(OSError, match="No space left"):
        export_onnx(model, tmp_path / "m.onnx", form="recurrent")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs, message", [
    ({"form": "rnn"}, "unknown form"),
    ({"chunk_size": 0}, "chunk size must be a positive integer"),
    ({"dtype": "bf16"}, "unknown dtype"),
    ({"opset": 16}, "too old"),
    ({"batch": 1}, "at least 2"),
    ({"seq_len": 20}, "fixed at 17 tokens"),
])
def test_bad_requests_raise_a_clear_error_and_write_nothing(tmp_path, kwargs, message):
    model = create_model("vit-tiny", **VISION).eval()
    with pytest.raises(ValueError, match=message):
        export_onnx(model, tmp_path / "m.onnx", **kwargs)
    (tmp_path / "a_file").write_text("")
    with pytest.raises(ExportError, match="cannot create the output directory"):
        export_onnx(model, tmp_path / "a_file" / "m.onnx")
    assert [p.name for p in tmp_path.iterdir()] == ["a_file"]


@pytest.mark.parametrize("mask", ["decay", "selective"])
def test_chunked_export_traced_short_runs_where_every_level_has_groups(tmp_path, mask):
    """Traced at 12 chunks (one group at every level of the state hierarchy), run at 150 chunks (several groups
    at each of the three levels, GROUP = 8): a group count that was 1 at trace time must not be fixed into the
    graph. Matches eager PyTorch."""
    torch.manual_seed(0)
    model = create_model("encoder-tiny", mask=mask, depth=1, dim=16, num_heads=2, vocab_size=50, max_len=512).eval()
    path = export_onnx(model, tmp_path / "m.onnx", form="chunked", chunk_size=2, seq_len=24)
    session = _session(str(path))
    for length in (24, 300):
        ids = torch.randint(0, 50, (2, length))
        mask_ = torch.ones(2, length, dtype=torch.int64)
        with torch.no_grad():
            expected = model(ids, mask_).numpy()
        actual = session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask_.numpy()})[0]
        np.testing.assert_allclose(actual, expected, atol=1e-5, rtol=1e-4)
