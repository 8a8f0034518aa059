"""The recurrent form in standard ONNX (`scan_op="onnx"`): each LION pass as two ai.onnx LinearAttention nodes.

The mapping on its own (one lion.SelectiveScan node rewritten, run by onnxruntime) is held to the independent
float64 reference; whole exports (text and vision, every variant, natural order, fp16, padded batches) to eager
PyTorch through verify_onnx; then the refusals (opset < 27, another form, TensorRT-RTX) and what `inspect` shows.
"""
from __future__ import annotations

import importlib.util

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner
from onnx import TensorProto, helper
from reference import reference_attention

from lion_export import create_model, save_checkpoint
from lion_export.cli import main
from lion_export.export import ExportError, export_onnx
from lion_export.export.linear_attention import GATED, LINEAR, replace_selective_scans
from lion_export.graph_summary import summarize
from lion_export.scan_op import DOMAIN, LINEAR_ATTENTION, OP_TYPE, SCAN_OP_KEY, node_attributes
from lion_export.verify import verify_onnx
from lion_export.verify.precision import fp16_decay_nodes

VISION = {"depth": 1, "dim": 16, "num_heads": 2, "img_size": 32, "patch_size": 8, "num_classes": 5}
TEXT = {"depth": 2, "dim": 16, "num_heads": 2, "vocab_size": 50, "max_len": 64}
B, H, DK, DV = 2, 3, 16, 8


# ---------------------------------------------------------------------------------------------------------------
# the mapping alone


def _rewritten_node(normalize: bool, rule: str) -> ort.InferenceSession:
    """One lion.SelectiveScan node (q, k (B, H, L, DK), v (B, H, L, DV), log decays (B, H, L)), rewritten."""
    node = helper.make_node(OP_TYPE, ["q", "k", "v", "a"], ["y"], domain=DOMAIN, **node_attributes(normalize, 1e-6))
    dims = {"q": [B, H, None, DK], "k": [B, H, None, DK], "v": [B, H, None, DV], "a": [B, H, None]}
    inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in dims.items()]
    graph = helper.make_graph([node], "one_pass", inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [B, H, None, DV])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 27), helper.make_opsetid(DOMAIN, 1)])
    assert replace_selective_scans(model, H, rule) == 1
    assert [n.op_type for n in model.graph.node].count(LINEAR_ATTENTION) == 2
    assert not any(n.domain == DOMAIN for n in model.graph.node)
    assert [o.domain for o in model.opset_import] == [""]
    onnx.checker.check_model(model, full_check=True)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _decays(variant: str, length: int, generator: torch.Generator) -> tuple[torch.Tensor | None, torch.Tensor]:
    """(the reference's log decay: None, (H,) or (B, H, L); the node's, expanded to (B, H, L))."""
    if variant == "LIT":
        return None, torch.zeros(B, H, length)
    if variant == "D":
        per_head = torch.log(torch.rand(H, generator=generator) * 0.5 + 0.5)
        return per_head, per_head.view(1, H, 1).expand(B, H, length).contiguous()
    scale = 60.0 if variant == "S saturated" else 2.0         # saturated gates: log decays down to -60
    per_token = -scale * torch.rand(B, H, length, generator=generator)
    return per_token, per_token


@pytest.mark.parametrize("length", [37, 1])
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("variant", ["LIT", "D", "S", "S saturated"])
def test_two_linear_attention_nodes_match_the_float64_reference(variant, normalize, length):
    generator = torch.Generator().manual_seed(len(variant) + normalize)
    q, k = (torch.rand(B, H, length, DK, generator=generator) + 0.1 for _ in range(2))    # phi(x) > 0, as LION's
    v = torch.randn(B, H, length, DV, generator=generator)
    reference_decay, node_decay = _decays(variant, length, generator)
    session = _rewritten_node(normalize, LINEAR if variant == "LIT" else GATED)
    (actual,) = session.run(None, {"q": q.numpy(), "k": k.numpy(), "v": v.numpy(), "a": node_decay.numpy()})
    expected = reference_attention(q, k, v, reference_decay, normalize=normalize).numpy()
    assert np.abs(actual - expected).max() <= 1e-5 * np.abs(expected).max()


def test_the_fp16_precision_check_watches_the_decay_input(tmp_path):
    """verify's static fp16 check (verify/precision.py) reports a LinearAttention node fed fp16 decays."""
    node = helper.make_node(LINEAR_ATTENTION, ["q", "k", "v", "", "g"], ["o", "s"], name="la", q_num_heads=1,
                            kv_num_heads=1, update_rule=GATED, scale=1.0)
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4, 2]) for n in ("q", "k", "v")]
    inputs.append(helper.make_tensor_value_info("g", TensorProto.FLOAT16, [1, 4, 1]))
    graph = helper.make_graph([node], "fp16_decay", inputs, [helper.make_tensor_value_info("o", TensorProto.FLOAT,
                                                                                          [1, 4, 2])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 27)]), tmp_path / "m.onnx")
    assert fp16_decay_nodes(tmp_path / "m.onnx") == [f"{LINEAR_ATTENTION} la on float16"]


def test_unknown_update_rule_is_refused():
    with pytest.raises(ValueError, match="update rule"):
        replace_selective_scans(onnx.ModelProto(), H, "delta")


# ---------------------------------------------------------------------------------------------------------------
# whole exports, verified against eager PyTorch


EXPORTS = {   # name: (preset, config, dtype, LinearAttention nodes: 2 per LION pass, the update rule)
    "text LIT": ("encoder-tiny", {"mask": "lit", **TEXT}, "fp32", 4, LINEAR),
    "text S fp16": ("encoder-tiny", {"mask": "selective", **TEXT}, "fp16", 4, GATED),
    "vision D": ("vit-tiny", {"mask": "decay", **VISION}, "fp32", 2, GATED),
    "vision S natural": ("vit-tiny", {"mask": "selective", "natural": True, **VISION}, "fp32", 4, GATED),
}


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Each export once: {name: (model, path)}."""
    folder = tmp_path_factory.mktemp("linear-attention")
    made = {}
    for name, (preset, config, dtype, _, _) in EXPORTS.items():
        torch.manual_seed(0)
        model = create_model(preset, **config).eval()
        path = export_onnx(model, folder / f"{name.replace(' ', '-')}.onnx", form="recurrent", dtype=dtype,
                           scan_op="onnx", seq_len=13 if preset == "encoder-tiny" else None)
        made[name] = model, path
    return made


@pytest.mark.parametrize("name", list(EXPORTS))
def test_export_holds_only_standard_ops_and_is_verified(exports, name):
    model, path = exports[name]
    _, _, dtype, nodes, rule = EXPORTS[name]
    proto = onnx.load(path)
    found = [n for n in proto.graph.node if n.op_type == LINEAR_ATTENTION]
    assert len(found) == nodes
    assert {helper.get_attribute_value(a) for n in found for a in n.attribute if a.name == "update_rule"} == {
        rule.encode()}
    assert {helper.get_attribute_value(a) for n in found for a in n.attribute if a.name == "scale"} == {1.0}
    assert all(n.domain in ("", "ai.onnx") for n in proto.graph.node) and not proto.functions
    assert {o.domain or "ai.onnx" for o in proto.opset_import} == {"ai.onnx"}
    assert {p.key: p.value for p in proto.metadata_props}[SCAN_OP_KEY] == "onnx"
    if dtype == "fp16":
        assert fp16_decay_nodes(path) == []
    report = verify_onnx(model, path, progress=False)      # text: padded rows in every batch of two
    assert report.passed, report.to_dict()
    assert any(case.seq_len % 2 for case in report.cases)    # an odd length among them


def test_inspect_counts_the_linear_attention_nodes(exports):
    _, path = exports["vision S natural"]
    summary = summarize(path)
    assert summary.op_histogram[LINEAR_ATTENTION] == 4
    assert summary.custom_nodes == {} and summary.local_functions == []
    assert summary.metadata[SCAN_OP_KEY] == "onnx"


# ---------------------------------------------------------------------------------------------------------------
# refusals and the command line


@pytest.fixture(scope="module")
def text_model():
    torch.manual_seed(0)
    return create_model("encoder-tiny", mask="decay", **TEXT).eval()


@pytest.mark.parametrize("request_, message", [
    ({"form": "recurrent", "opset": 26}, "opset 27 or newer"),
    ({"form": "chunked"}, "recurrent form"),
])
def test_requests_the_standard_op_cannot_serve_are_refused_before_tracing(tmp_path, text_model, request_,
                                                                         message):
    with pytest.raises(ExportError, match=message):
        export_onnx(text_model, tmp_path / "m.onnx", scan_op="onnx", **request_)
    assert list(tmp_path.iterdir()) == []


def test_cli_exports_verifies_and_refuses_an_old_opset(tmp_path, text_model):
    checkpoint = save_checkpoint(text_model, tmp_path / "model.pt")
    result = CliRunner().invoke(main, [str(checkpoint), "--mode", "recurrent", "--scan-op", "onnx",
                                       "--seq-len", "9", "--quiet"])
    assert result.exit_code == 0, result.output + result.stderr
    assert "parity PASSED" in result.output
    assert summarize(tmp_path / "model.onnx").op_histogram[LINEAR_ATTENTION] == 4
    inspected = CliRunner().invoke(main, ["inspect", str(tmp_path / "model.onnx")])
    assert inspected.exit_code == 0 and f"{LINEAR_ATTENTION}" in inspected.output
    old = CliRunner().invoke(main, [str(checkpoint), "--mode", "recurrent", "--scan-op", "onnx", "--opset", "26",
                                    "-o", str(tmp_path / "old.onnx")])
    assert old.exit_code == 2
    assert old.stderr.count("\n") == 1 and "opset 27" in old.stderr and "Traceback" not in old.stderr
    assert not (tmp_path / "old.onnx").exists()


# ---------------------------------------------------------------------------------------------------------------
# TensorRT


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@pytest.mark.skipif(_installed("tensorrt") or not _installed("tensorrt_rtx_bindings"),
                    reason="TensorRT-RTX's refusal: needs TensorRT-RTX and no standard TensorRT (which wins)")
def test_tensorrt_rtx_build_is_refused_in_one_line(tmp_path, exports):
    _, path = exports["text LIT"]
    result = CliRunner().invoke(main, ["build", str(path), "-o", str(tmp_path / "m.engine")])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "--scan-op lion" in result.stderr and "chunked" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(_installed("tensorrt") or not _installed("tensorrt_rtx_bindings"),
                    reason="needs TensorRT-RTX and no standard TensorRT (which load_backend prefers)")
def test_tensorrt_rtx_parser_still_lacks_the_linear_attention_plugin(exports):
    """The reason for the refusal above: if a TensorRT-RTX release parses the op, this fails and the refusal
    should go."""
    from lion_export.engine.backend import collecting_logger, load_backend

    trt = load_backend().module
    logger = collecting_logger(trt, None)
    builder = trt.Builder(logger)
    network = builder.create_network(0)           # builder, network and parser must outlive the parse
    parser = trt.OnnxParser(network, logger)
    assert not parser.parse_from_file(str(exports["text LIT"][1]))
    assert "LinearAttention plugin" in " ".join(str(parser.get_error(i)) for i in range(parser.num_errors))


@pytest.mark.skipif(not _installed("tensorrt"),
                    reason="needs standard TensorRT (module tensorrt, whose parser maps LinearAttention to its own "
                           "plugin); only TensorRT-RTX, which cannot, is installed here")
def test_standard_tensorrt_builds_the_standard_op(tmp_path, exports):
    from lion_export.engine.build import build_engine

    report = build_engine(exports["text LIT"][1], tmp_path / "m.engine")
    assert (tmp_path / "m.engine").stat().st_size > 0 and report.scan_nodes == 0
