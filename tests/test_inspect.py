"""`lion-export inspect`: metadata, op histogram (subgraphs and local functions included), dynamic axes, custom
nodes; bad files give one line on stderr and exit 2. The model is built by hand with onnx.helper, so every count
asserted below is known independently of any exporter."""
from __future__ import annotations

import json

import onnx
import pytest
import torch
from click.testing import CliRunner
from onnx import TensorProto, helper

from lion_export.cli import main
from lion_export.export import export_onnx
from lion_export.graph_summary import OnnxFileError, load_onnx_model, summarize
from lion_export.models import create_model


@pytest.fixture
def custom_model(tmp_path):
    """x (batch, seq, 4) -> Relu -> lion.Double (a local function: Add(x, x)) -> Identity inside an If -> y."""
    double = helper.make_function("lion", "Double", ["a"], ["b"], [helper.make_node("Add", ["a", "a"], ["b"])],
                                  [helper.make_opsetid("", 18)], attributes=["scale"])
    branch = helper.make_graph([helper.make_node("Identity", ["d"], ["y_branch"])], "branch", [],
                               [helper.make_tensor_value_info("y_branch", TensorProto.FLOAT, None)])
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Double", ["r"], ["d"], domain="lion", scale=2.0),
             helper.make_node("Constant", [], ["c"], value=helper.make_tensor("c", TensorProto.BOOL, [], [True])),
             helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=branch)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("lion", 1)],
                              functions=[double])
    helper.set_model_props(model, {"mode": "recurrent", "chunk_size": "64", "config": json.dumps({"dim": 8})})
    onnx.checker.check_model(model, full_check=True)
    path = tmp_path / "custom.onnx"
    onnx.save(model, str(path))
    return path


def test_summary_counts_ops_axes_custom_nodes_and_functions(custom_model):
    summary = summarize(custom_model)
    assert summary.op_histogram == {"Relu": 1, "lion.Double": 1, "Constant": 1, "If": 1, "Identity": 2}
    assert summary.function_op_histogram == {"Add": 1}
    assert summary.custom_nodes == {"lion.Double": 1}
    assert summary.local_functions == [{"name": "lion.Double", "inputs": ["a"], "outputs": ["b"],
                                        "attributes": ["scale"], "nodes": 1}]
    assert summary.dynamic_axes == {"x": {0: "batch", 1: "seq"}, "y": {0: "batch", 1: "seq"}}
    assert summary.metadata == {"mode": "recurrent", "chunk_size": 64, "config": {"dim": 8}}
    assert summary.opsets == {"ai.onnx": 18, "lion": 1}


def test_cli_prints_tables_and_json(custom_model):
    runner = CliRunner()
    text = runner.invoke(main, ["inspect", str(custom_model)])
    assert text.exit_code == 0, text.output
    assert "lion.Double x1" in text.output and "[batch, seq, 4]" in text.output and "recurrent" in text.output
    as_json = runner.invoke(main, ["inspect", str(custom_model), "--json"])
    assert as_json.exit_code == 0
    data = json.loads(as_json.output)
    assert data["custom_nodes"] == {"lion.Double": 1} and data["dynamic_axes"]["x"] == {"0": "batch", "1": "seq"}


@pytest.mark.parametrize("content", [None, b"", b"this is not protobuf \xff\xfe", b"\x08\x07"])
def test_bad_files_give_one_line_and_exit_2(tmp_path, content):
    path = tmp_path / "model.onnx"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(OnnxFileError):
        load_onnx_model(path)
    result = CliRunner().invoke(main, ["inspect", str(path)])
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert str(path.name) in result.stderr


def test_recurrent_export_shows_its_custom_node_and_local_function(tmp_path):
    torch.manual_seed(0)
    model = create_model("vit-tiny", mask="selective", dim=32, depth=2, num_heads=2, img_size=32, num_classes=5)
    summary = summarize(export_onnx(model, tmp_path / "rec.onnx", form="recurrent"))
    assert summary.custom_nodes == {"lion.SelectiveScan": 2}                      # one per mixer
    (function,) = summary.local_functions
    assert function["name"] == "lion.SelectiveScan" and function["inputs"] == ["q", "k", "v", "log_decay"]
    assert summary.function_op_histogram.get("Scan", 0) >= 1
    assert summary.metadata["mode"] == "recurrent" and summary.metadata["variants"] == "LION-S"
    assert summary.dynamic_axes["images"] == {0: "batch"}


def test_non_tensor_inputs_are_named_by_kind(tmp_path):
    """A sequence-typed graph input (not something LION exports, but a file a user may point at) is summarised."""
    import onnx
    from onnx import TensorProto, helper

    from lion_export.graph_summary import summarize

    seq = helper.make_tensor_sequence_value_info("xs", TensorProto.FLOAT, None)
    node = helper.make_node("SequenceLength", ["xs"], ["n"])
    graph = helper.make_graph([node], "g", [seq], [helper.make_tensor_value_info("n", TensorProto.INT64, [])])
    path = tmp_path / "seq.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    summary = summarize(path).to_dict()
    assert summary["inputs"]["xs"]["dtype"] == "sequence" and summary["outputs"]["n"]["dtype"] == "int64"
