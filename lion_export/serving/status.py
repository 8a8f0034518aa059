"""What `lion-export serve` says about each model once the server is up: ready, or not loaded and why.

Triton's own reason is kept; for a model whose backend the local server lacks (the nvidia-pytriton build carries
the python backend only) the line says so plainly and names the two ways out, instead of leaving the user with
"unable to find backend library".
"""
from __future__ import annotations

from pathlib import Path

from .server import ModelState

#: the backends the tritonserver of the nvidia-pytriton wheel has
LOCAL_BACKENDS = ("python",)


def model_backend(repo: Path, name: str) -> str | None:
    """The backend (or platform) a model's config.pbtxt names; None when it cannot be read."""
    from google.protobuf import text_format

    from ..serve_extra import require

    config_pb2 = require("tritonclient.grpc.model_config_pb2", "tritonclient[grpc]")
    try:
        config = text_format.Parse((repo / name / "config.pbtxt").read_text(), config_pb2.ModelConfig())
    except (OSError, text_format.ParseError):
        return None
    return config.backend or config.platform or None


def status_lines(repo: str | Path, states: list[ModelState]) -> list[str]:
    """One line per model: `ready NAME (backend)` or `not loaded NAME (backend): why`."""
    lines = []
    for state in states:
        backend = model_backend(Path(repo), state.name)
        label = f"{state.name} ({backend or 'unknown backend'})"
        if state.ready:
            lines.append(f"ready       {label}")
            continue
        why = " ".join(state.reason.split()) or state.state
        if backend is not None and backend not in LOCAL_BACKENDS:
            why = (f"this server (the tritonserver of nvidia-pytriton) has the python backend only, not {backend}: "
                   "serve it in NVIDIA's Triton container, or write it with --backend python")
        lines.append(f"not loaded  {label}: {why}")
    return lines


__all__ = ["LOCAL_BACKENDS", "model_backend", "status_lines"]
