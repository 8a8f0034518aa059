"""A model served by a Triton Inference Server behind the runner interface: `triton://HOST:PORT/MODEL` over HTTP,
`triton+grpc://HOST:PORT/MODEL` over gRPC (an optional `/VERSION` after the model).

`activate` asks the server, not the user, what the model takes: it must answer, the model must be ready (else the
repository index's reason is the error), and the model's metadata and config give the input and output names,
dtypes, dims and the largest batch. `infer` checks the feed against them (feeds.check_feed) before sending it,
splits a batch larger than the model's max_batch_size into requests it accepts and joins the answers, so `verify`
and `lion_export.load` use a served model like a file. tritonclient is imported on `activate` only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..serve_extra import require
from .base import Runner
from .feeds import InputSpec, check_feed

CLIENTS = {"triton": "tritonclient.http", "triton+grpc": "tritonclient.grpc"}


@dataclass(frozen=True)
class ServedModel:
    """A parsed served-model URL."""

    scheme: str
    address: str
    model: str
    version: str = ""

    @classmethod
    def parse(cls, url: str) -> "ServedModel":
        """`triton://HOST:PORT/MODEL[/VERSION]` -> ServedModel; ValueError naming the expected form."""
        scheme, _, rest = url.partition("://")
        address, _, path = rest.partition("/")
        parts = [p for p in path.split("/") if p]
        if scheme not in CLIENTS or ":" not in address or not 1 <= len(parts) <= 2:
            raise ValueError(f"{url!r} is not a served model; write triton://HOST:PORT/MODEL (HTTP) or "
                             "triton+grpc://HOST:PORT/MODEL (gRPC), optionally /VERSION after the model")
        return cls(scheme, address, parts[0], parts[1] if len(parts) == 2 else "")

    def __str__(self) -> str:
        return f"{self.scheme}://{self.address}/{self.model}" + (f"/{self.version}" if self.version else "")


def _specs(entries: list[dict], numpy_dtype) -> list[InputSpec]:
    """InputSpecs from the model metadata's inputs or outputs (-1, a dynamic axis or the batch, as None)."""
    return [InputSpec(e["name"], np.dtype(numpy_dtype(e["datatype"])),
                      tuple(None if int(d) < 0 else int(d) for d in e["shape"])) for e in entries]


class TritonClientRunner(Runner):
    """One served model; the client connects on `activate`."""

    name = "triton"

    def __init__(self, url: str) -> None:
        super().__init__()
        self.served = ServedModel.parse(url)
        self.client = None
        self.inputs: list[InputSpec] = []
        self.outputs: list[InputSpec] = []
        self.max_batch_size = 0
        self._server = ""
        self._module = None
        # the gRPC client returns protobuf messages unless asked for JSON-like dicts, as HTTP gives
        self._json = {"as_json": True} if self.served.scheme == "triton+grpc" else {}

    def activate(self) -> None:
        module = require(CLIENTS[self.served.scheme], "tritonclient[http,grpc]")
        utils = require("tritonclient.utils", "tritonclient")
        served = self.served
        try:
            client = module.InferenceServerClient(served.address)
            live = client.is_server_live()
        except Exception as exc:  # noqa: BLE001 - tritonclient raises its own and the transport's errors
            raise ValueError(f"{served}: no Triton server answers at {served.address} "
                             f"({' '.join(str(exc).split())[:200]})") from None
        if not live:
            raise ValueError(f"{served}: the server at {served.address} is not live")
        if not client.is_model_ready(served.model, served.version):
            raise ValueError(f"{served}: model {served.model!r} is not ready on {served.address}"
                             f"{self._reason(client)}")
        metadata = client.get_model_metadata(served.model, served.version, **self._json)
        config = client.get_model_config(served.model, served.version, **self._json)
        self.max_batch_size = int(config.get("config", config).get("max_batch_size", 0))
        self.inputs = _specs(metadata["inputs"], utils.triton_to_np_dtype)
        self.outputs = _specs(metadata["outputs"], utils.triton_to_np_dtype)
        self._server = client.get_server_metadata(**self._json).get("version", "")
        self.client, self._module = client, module

    def _reason(self, client) -> str:
        """Why the model is not ready, from the repository index (empty when the server gives no reason)."""
        try:
            index = client.get_model_repository_index(**self._json)
        except Exception:  # noqa: BLE001 - the reason is a courtesy; the error stands without it
            return ""
        entries = index.get("models", index) if isinstance(index, dict) else index
        reasons = [e.get("reason", "") for e in entries if e.get("name") == self.served.model]
        known = sorted(e.get("name") for e in entries)
        return (f": {' '.join(reasons[0].split())[:300]}" if reasons and reasons[0] else
                "" if reasons else f" (the server has {', '.join(known) or 'no models'})")

    def deactivate(self) -> None:
        if self.client is not None:
            self.client.close()
        self.client = self._module = None

    def describe(self) -> str:
        return f"{self.served} (Triton Inference Server {self._server})"

    def input_specs(self) -> list[InputSpec]:
        """The served model's inputs (dynamic axes as None), as the server describes them."""
        return list(self.inputs)

    def output_specs(self) -> list[InputSpec]:
        return list(self.outputs)

    def _request(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from tritonclient.utils import np_to_triton_dtype

        module = self._module
        inputs = []
        for name, array in feed.items():
            entry = module.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
            entry.set_data_from_numpy(np.ascontiguousarray(array))
            inputs.append(entry)
        wanted = [module.InferRequestedOutput(spec.name) for spec in self.outputs]
        result = self.client.infer(self.served.model, inputs, model_version=self.served.version, outputs=wanted)
        return {spec.name: result.as_numpy(spec.name) for spec in self.outputs}

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = check_feed(feed, self.inputs, str(self.served))
        if not self.max_batch_size:
            return self._request(feed)
        rows, step = len(next(iter(feed.values()))), self.max_batch_size
        parts = [self._request({name: array[start:start + step] for name, array in feed.items()})
                 for start in range(0, rows, step)]
        return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


__all__ = ["CLIENTS", "ServedModel", "TritonClientRunner"]
