"""`lion_export.load`: a checkpoint and its .onnx export give eager PyTorch's outputs (the model run directly, in
float32), inputs are described from the file, wrong inputs are one ValueError before anything runs, token batches
are padded and images cast to the file's dtype by the helpers; an engine needs a CUDA GPU."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import lion_export
from lion_export.checkpoints import save_checkpoint
from lion_export.export import export_onnx
from lion_export.models import create_model
from lion_export.runners import InputsError, cast_images, pad_token_ids

FP32 = {"rtol": 1e-4, "atol": 1e-5}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny text encoder and a tiny vision model: checkpoint, fp32 export, and an fp16 export of the vision one."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("runtime")
    text = create_model("encoder-tiny", mask="selective", vocab_size=64, dim=32, depth=1, num_heads=2,
                        max_len=80).eval()
    vision = create_model("vit-tiny", mask="selective", dim=32, depth=1, num_heads=2, img_size=32, num_classes=5,
                          pos_embed=False).eval()
    out = {"text": text, "vision": vision}
    for name, model in (("text", text), ("vision", vision)):
        out[f"{name}.pt"] = save_checkpoint(model, folder / f"{name}.pt")
        out[f"{name}.onnx"] = export_onnx(model, folder / f"{name}.onnx", form="chunked", seq_len=17)
    out["vision16.onnx"] = export_onnx(vision, folder / "vision16.onnx", form="chunked", dtype="fp16")
    return out


def _eager(model, *inputs):
    with torch.inference_mode():
        return model(*(torch.from_numpy(x) for x in inputs)).numpy()


@pytest.mark.parametrize("suffix", [".pt", ".onnx"])
def test_text_checkpoint_and_export_match_eager_on_a_padded_batch(files, suffix):
    ids, mask = pad_token_ids([[5, 9, 2, 7, 1, 3, 8], [4, 4, 6]], pad_id=0)
    expected = _eager(files["text"], ids, mask)
    with lion_export.load(files[f"text{suffix}"]) as session:
        assert [i.name for i in session.inputs] == ["input_ids", "attention_mask"]
        assert session.inputs[0].dtype == np.int64 and session.inputs[0].shape[1] == "seq_len"
        out = session({"input_ids": ids, "attention_mask": torch.from_numpy(mask)})
        assert list(out) == [o.name for o in session.outputs] and session.outputs[0].shape[0] == "batch"
    (actual,) = out.values()
    assert actual.shape == expected.shape and actual.shape[0] == 2
    np.testing.assert_allclose(actual, expected, **FP32)


@pytest.mark.parametrize("suffix", [".pt", ".onnx"])
def test_vision_checkpoint_and_export_match_eager_with_a_single_array(files, suffix):
    images = np.random.default_rng(0).standard_normal((3, 3, 32, 48)).astype(np.float32)
    with lion_export.load(files[f"vision{suffix}"]) as session:
        (info,) = session.inputs
        assert (info.name, info.dtype, info.min_shape[:2]) == ("images", np.float32, (1, 3))
        out = session(images)["logits"]
    np.testing.assert_allclose(out, _eager(files["vision"], images), **FP32)


def test_padding_pads_at_the_end_with_the_given_id():
    ids, mask = pad_token_ids([[3, 1], [7, 7, 7, 2]], pad_id=9)
    assert ids.tolist() == [[3, 1, 9, 9], [7, 7, 7, 2]] and mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    assert ids.dtype == mask.dtype == np.int64
    with pytest.raises(ValueError, match="empty"):
        pad_token_ids([[1], []])


def test_fp16_file_takes_fp16_images_through_the_helper(files):
    images = np.random.default_rng(1).standard_normal((2, 3, 32, 32))
    with lion_export.load(files["vision16.onnx"]) as session:
        assert session.inputs[0].dtype == np.float16
        cast = cast_images(session, torch.from_numpy(images))
        assert cast.dtype == np.float16
        out = session(cast)["logits"]
        with pytest.raises(InputsError, match="integer pixels"):
            cast_images(session, images.astype(np.uint8))
    assert out.dtype == np.float16
    expected = _eager(files["vision"], images.astype(np.float32))
    np.testing.assert_allclose(out.astype(np.float32), expected, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("suffix", [".pt", ".onnx"])
@pytest.mark.parametrize("feed, message", [
    ({"input_ids": np.ones((1, 4), np.int64), "mask": np.ones((1, 4), np.int64)}, "unexpected \\['mask'\\]"),
    ({"input_ids": np.ones((1, 4), np.float32), "attention_mask": np.ones((1, 4), np.int64)}, "is float32"),
    ({"input_ids": np.ones(4, np.int64), "attention_mask": np.ones(4, np.int64)}, "expects rank 2"),
    ({"input_ids": np.ones((1, 4), np.int64), "attention_mask": np.ones((1, 5), np.int64)}, "axis 'seq_len'"),
    (np.ones((1, 4), np.int64), "takes 2 inputs"),
])
def test_wrong_text_inputs_are_one_line_value_errors(files, suffix, feed, message):
    with lion_export.load(files[f"text{suffix}"]) as session:
        with pytest.raises(ValueError, match=message) as caught:
            session(feed)
    assert "\n" not in str(caught.value)


def test_checkpoint_sequence_longer_than_max_len_is_refused_before_running(files):
    with lion_export.load(files["text.pt"]) as session:
        assert session.inputs[0].max_shape[1] == 80
        ids = np.ones((1, 81), np.int64)
        with pytest.raises(ValueError, match=r"axis 1 must lie in \[1, 80\]"):
            session({"input_ids": ids, "attention_mask": ids})


def test_onnxruntime_session_reports_its_providers_and_a_fallback(files):
    import onnxruntime as ort

    with lion_export.load(files["vision.onnx"]) as session:
        assert session.providers == ("CPUExecutionProvider",) and session.warnings == []
    if "CUDAExecutionProvider" in ort.get_available_providers() and torch.cuda.is_available():
        pytest.skip("CUDA runs here: no fallback to report")
    with lion_export.load(files["vision.onnx"], providers="cuda,cpu") as session:
        assert session.providers == ("CPUExecutionProvider",)
        assert len(session.warnings) == 1 and "CUDAExecutionProvider" in session.warnings[0]
    with pytest.raises(ValueError, match="unknown onnxruntime provider 'tpu'"):
        lion_export.load(files["vision.onnx"], providers="tpu")


def test_an_engine_loads_through_the_tensorrt_runner(files, tmp_path):
    """Real code path: on a machine without a GPU the runner refuses in one line; with one, parity with eager."""
    from lion_export.engine.backend import BackendError, load_backend
    from lion_export.runners.trt_engine import NO_GPU, RunnerUnavailable

    try:
        load_backend()
    except BackendError as exc:
        pytest.skip(f"no TensorRT here: {exc}")
    from lion_export.engine.build import build_engine

    engine = tmp_path / "vision.engine"
    build_engine(files["vision.onnx"], engine)
    if not torch.cuda.is_available():
        with pytest.raises(RunnerUnavailable, match=NO_GPU):
            lion_export.load(engine)
        pytest.skip("needs a CUDA GPU")
    images = np.random.default_rng(2).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with lion_export.load(engine) as session:
        info = session.inputs[0]
        assert info.max_shape[0] >= 2
        np.testing.assert_allclose(session(images)["logits"], _eager(files["vision"], images), rtol=1e-3, atol=1e-3)
        too_big = np.zeros((info.max_shape[0] + 1, 3, 32, 32), np.float32)
        with pytest.raises(ValueError, match="must lie in"):
            session(too_big)


def test_missing_file_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        lion_export.load(tmp_path / "absent.onnx")
