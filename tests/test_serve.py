"""A real Triton Inference Server (the tritonserver of the nvidia-pytriton wheel) on free ports of 127.0.0.1,
started once for the module on a repository `triton-repo` wrote: a tiny text checkpoint and a tiny vision export
on the python backend, and an onnxruntime-backend model that this build cannot load (it has the python backend
only), which must be reported with the reason while the others serve. Checked over HTTP and gRPC with tritonclient
against eager PyTorch, through `lion-export verify ... triton://`, with malformed requests, and `lion-export serve`
as a process stopped by Ctrl-C. The server's log is printed when a test fails."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from engine_exports import TEXT, VISION, exported, model
from lion_export import save_checkpoint
from lion_export.cli import main

http = pytest.importorskip("tritonclient.http", reason='needs tritonclient (pip install "lion-export[serve]")')
grpc = pytest.importorskip("tritonclient.grpc", reason='needs tritonclient (pip install "lion-export[serve]")')
from tritonclient.utils import InferenceServerException, np_to_triton_dtype  # noqa: E402

from lion_export.serving.server import ServerError, TritonServer, server_files  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TEXT_MODEL, VISION_MODEL, ORT_MODEL = "text", "vision", "text_ort"
# fp32 served vs float64 eager on a depth-1, dim-16 model: rounding of a few fp32 ulps at most
ATOL = 1e-5


@pytest.fixture(scope="module")
def models():
    return {"text": model("text", "selective").eval(), "vision": model("vision", "decay").eval()}


@pytest.fixture(scope="module")
def repo(models, tmp_path_factory):
    try:
        server_files()
    except ValueError as exc:
        pytest.skip(f"needs the tritonserver of the nvidia-pytriton wheel (the [serve] extra): {exc}")
    folder = tmp_path_factory.mktemp("serve")
    checkpoint = save_checkpoint(models["text"], folder / "text.pt")
    vision = exported("vision", "decay", "recurrent")
    text_onnx = exported("text", "selective", "chunked")
    runner = CliRunner()
    for out, args in (("repo", [checkpoint, vision, "--backend", "python", "--name", TEXT_MODEL, "--name",
                                VISION_MODEL]),
                      ("ort", [text_onnx, "--name", ORT_MODEL])):
        result = runner.invoke(main, ["triton-repo", *map(str, args), "-o", str(folder / out)])
        assert result.exit_code == 0, result.output
    (folder / "ort" / ORT_MODEL).rename(folder / "repo" / ORT_MODEL)      # one backend per triton-repo run
    return folder, checkpoint


@pytest.fixture(scope="module")
def server(repo):
    folder, _ = repo
    with TritonServer(folder / "repo", timeout=180, work_dir=folder / "work") as started:
        yield started
    assert started.process.poll() is not None


@pytest.fixture(autouse=True)
def _log_on_failure(request):
    """Print the server's log after a failing test (pytest shows it under the failure)."""
    failed = request.session.testsfailed
    yield
    if request.session.testsfailed > failed and "server" in request.fixturenames:
        print(request.getfixturevalue("server").log_tail(80))


def tokens(batch: int, length: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    ids = np.random.default_rng(seed).integers(1, TEXT["vocab_size"], size=(batch, length), dtype=np.int64)
    mask = np.ones_like(ids)
    mask[0, length // 2:] = 0                                       # one padded row
    return ids, mask


def images(batch: int, seed: int = 0) -> np.ndarray:
    size = VISION["img_size"]
    return np.random.default_rng(seed).standard_normal((batch, 3, size, size)).astype(np.float32)


def eager(model, *arrays) -> np.ndarray:
    with torch.inference_mode():
        return model.double()(*(torch.from_numpy(a).double() if a.dtype.kind == "f" else torch.from_numpy(a)
                                for a in arrays)).numpy()


def infer(module, url: str, name: str, feed: dict[str, np.ndarray]) -> np.ndarray:
    """One request with tritonclient; each input declared with its array's own dtype."""
    client = module.InferenceServerClient(url)
    try:
        inputs = []
        for key, array in feed.items():
            inputs.append(module.InferInput(key, list(array.shape), np_to_triton_dtype(array.dtype)))
            inputs[-1].set_data_from_numpy(array)
        return client.infer(name, inputs).as_numpy("logits")
    finally:
        client.close()


def test_health_and_which_models_loaded(server):
    for module, url in ((http, server.http_url), (grpc, server.grpc_url)):
        client = module.InferenceServerClient(url)
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready(TEXT_MODEL) and client.is_model_ready(VISION_MODEL)
        assert not client.is_model_ready(ORT_MODEL)
        client.close()
    states = {s.name: s for s in server.model_states()}
    assert states[TEXT_MODEL].ready and states[VISION_MODEL].ready
    assert states[ORT_MODEL].state == "UNAVAILABLE" and "backend 'onnxruntime'" in states[ORT_MODEL].reason


def test_serve_lines_say_why_a_model_did_not_load(server, repo):
    from lion_export.serving.status import status_lines

    lines = status_lines(repo[0] / "repo", server.model_states())
    assert f"ready       {TEXT_MODEL} (python)" in lines
    assert any(line.startswith(f"not loaded  {ORT_MODEL} (onnxruntime)") and "python backend only" in line
               for line in lines)


def test_metadata_describes_the_models(server):
    client = http.InferenceServerClient(server.http_url)
    vision = client.get_model_metadata(VISION_MODEL)
    text = client.get_model_metadata(TEXT_MODEL)
    client.close()
    size = VISION["img_size"]
    assert [(i["name"], i["datatype"], i["shape"]) for i in vision["inputs"]] == [("images", "FP32",
                                                                                  [-1, 3, size, size])]
    assert [(o["name"], o["shape"]) for o in vision["outputs"]] == [("logits", [-1, VISION["num_classes"]])]
    assert [(i["name"], i["datatype"]) for i in text["inputs"]] == [("input_ids", "INT64"),
                                                                    ("attention_mask", "INT64")]


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_inference_equals_eager(server, models, protocol):
    module, url = (http, server.http_url) if protocol == "http" else (grpc, server.grpc_url)
    ids, mask = tokens(3, 20)
    served = infer(module, url, TEXT_MODEL, {"input_ids": ids, "attention_mask": mask})
    reference = eager(models["text"], ids, mask)
    valid = mask.astype(bool)                                       # padded positions are not compared
    np.testing.assert_allclose(served[valid], reference[valid], atol=ATOL, rtol=0)
    pictures = images(2)
    np.testing.assert_allclose(infer(module, url, VISION_MODEL, {"images": pictures}),
                               eager(models["vision"], pictures), atol=ATOL, rtol=0)


@pytest.mark.parametrize("scheme, name", [("triton", TEXT_MODEL), ("triton+grpc", TEXT_MODEL)])
def test_verify_through_the_server(server, repo, scheme, name):
    address = server.http_url if scheme == "triton" else server.grpc_url
    result = CliRunner().invoke(main, ["verify", str(repo[1]), f"{scheme}://{address}/{name}", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "parity PASSED" in result.output


def test_load_a_served_model_and_batches_larger_than_the_server_takes(server, models):
    import lion_export

    with lion_export.load(f"triton://{server.http_url}/{VISION_MODEL}") as session:
        assert [(i.name, i.dtype.name) for i in session.inputs] == [("images", "float32")]
        pictures = images(11, seed=3)                               # max_batch_size is 8: two requests
        np.testing.assert_allclose(session(pictures)["logits"], eager(models["vision"], pictures), atol=ATOL, rtol=0)
        with pytest.raises(ValueError, match="'images' has shape"):
            session(pictures[:, :, :16])


def test_a_model_that_did_not_load_is_one_error_with_the_reason(server, repo):
    result = CliRunner().invoke(main, ["verify", str(repo[1]), f"triton://{server.http_url}/{ORT_MODEL}"])
    assert result.exit_code == 2 and "backend 'onnxruntime'" in result.output


def _raw(server, payload: bytes) -> bytes:
    """Send `payload` on the HTTP port as it is; what came back before the server closed or answered."""
    host, port = server.http_url.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(payload)
        raw.shutdown(socket.SHUT_WR)
        return raw.recv(4096)


GARBAGE = b"\x16\x03\x01\x02\x00garbage\xff\xfe not HTTP at all\r\n\r\n"


@pytest.mark.parametrize("case", ["wrong dtype", "wrong shape", "missing input", "unknown model", "oversized batch",
                                  "token outside the vocabulary", "garbage bytes", "garbage request body"])
def test_malformed_requests_get_errors_and_the_server_keeps_serving(server, models, case):
    ids, mask = tokens(2, 12)
    if case == "garbage bytes":             # not HTTP: the server drops the connection without an answer
        assert _raw(server, GARBAGE) == b""
    elif case == "garbage request body":    # HTTP around garbage: an error status (Triton 2.51 says 500) and why
        answer = _raw(server, f"POST /v2/models/{VISION_MODEL}/infer HTTP/1.1\r\nHost: x\r\nContent-Length: "
                              f"{len(GARBAGE)}\r\n\r\n".encode() + GARBAGE)
        assert answer.split(b" ")[1][:1] in (b"4", b"5"), answer[:200]
        assert b'"error":"failed to parse the request JSON' in answer
    else:
        name, feed = {
            "wrong dtype": (TEXT_MODEL, {"input_ids": ids.astype(np.float32), "attention_mask": mask}),
            "wrong shape": (VISION_MODEL, {"images": images(1)[:, :, :16]}),
            "missing input": (TEXT_MODEL, {"input_ids": ids}),
            "unknown model": ("no_such_model", {"input_ids": ids, "attention_mask": mask}),
            "oversized batch": (VISION_MODEL, {"images": images(9)}),
            "token outside the vocabulary": (TEXT_MODEL, {"input_ids": ids + TEXT["vocab_size"],
                                                          "attention_mask": mask}),
        }[case]
        with pytest.raises(InferenceServerException) as error:
            infer(http, server.http_url, name, feed)
        assert str(error.value).strip()
    pictures = images(1, seed=7)
    np.testing.assert_allclose(infer(http, server.http_url, VISION_MODEL, {"images": pictures}),
                               eager(models["vision"], pictures), atol=ATOL, rtol=0)


def test_a_server_that_cannot_start_is_one_error_with_its_log(repo, tmp_path):
    with socket.socket() as taken:                  # the HTTP port is in use: tritonserver exits at once
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(ServerError, match="before it was ready; its log ends:\n(.|\n)*127.0.0.1"):
            TritonServer(tmp_path, http_port=taken.getsockname()[1], timeout=60, work_dir=tmp_path / "w").start()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w"]


def test_serve_runs_until_ctrl_c_and_leaves_no_process(repo, tmp_path):
    """`lion-export serve` on a repository of one model it cannot load (no python stub to start: fast)."""
    folder = tmp_path / "only_ort"
    folder.mkdir()
    os.symlink(repo[0] / "repo" / ORT_MODEL, folder / ORT_MODEL)
    process = subprocess.Popen([sys.executable, "-m", "lion_export.cli", "serve", str(folder), "--timeout", "120"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        first = process.stdout.readline()
        assert first.startswith(f"serving {folder}"), (first, process.stderr.read() if process.poll() else "")
        pid = int(first.split("tritonserver pid ")[1].split(")")[0])
        assert "python backend only" in process.stdout.readline()
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 130
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "interrupted (SIGINT)" in process.stderr.read()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
