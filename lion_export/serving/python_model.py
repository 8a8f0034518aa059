"""The `model.py` of a python-backend model in a repository `triton-repo` writes (copied there as it is).

Triton's python backend imports this file inside its stub process and calls `execute` with the requests the
dynamic batcher gathered. It opens the artefact beside it (the config's `artefact` parameter) with
`lion_export.load` (with the config's `threads` parameter, onnxruntime's threads, when set), so every artefact kind
serves the same way, with the same input checks; requests whose inputs
have the same shapes are concatenated along the batch axis and run once, and the outputs are split back by request
and returned by name. A request that fails (a size outside the file's range, a token id outside the vocabulary)
gets its error in one line; the other requests of the batch are answered. Runs only inside Triton
(`triton_python_backend_utils` exists there only).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

import lion_export
from lion_export.serving.model_config import ARTEFACT_PARAMETER, THREADS_PARAMETER


class TritonPythonModel:
    """One instance per Triton model instance: one `lion_export.load` session."""

    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        folder = Path(args["model_repository"]) / args["model_version"]
        parameters = config["parameters"]
        threads = parameters.get(THREADS_PARAMETER, {}).get("string_value")
        self.session = lion_export.load(folder / parameters[ARTEFACT_PARAMETER]["string_value"],
                                        threads=int(threads) if threads else None)
        self.batched = config.get("max_batch_size", 0) > 0
        self.input_names = [i["name"] for i in config["input"]]
        self.output_names = [o["name"] for o in config["output"]]

    def execute(self, requests: list) -> list:
        feeds = [{name: pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in self.input_names}
                 for request in requests]
        responses: list = [None] * len(requests)
        groups: dict[tuple, list[int]] = {}
        for index, feed in enumerate(feeds):
            key = tuple((name, feed[name].shape[1:] if self.batched else feed[name].shape, feed[name].dtype.str)
                        for name in self.input_names)
            groups.setdefault(key, []).append(index)
        for indices in groups.values():
            for index, outputs in zip(indices, self._run([feeds[i] for i in indices])):
                responses[index] = outputs
        return responses

    def _run(self, feeds: list[dict[str, np.ndarray]]) -> list:
        """Responses for feeds of equal shapes: one run of the whole batch, split back by request. When the joined
        run fails, each request runs alone, so one bad request (a token id outside the vocabulary) is the only
        one answered with the error."""
        try:
            if not self.batched:
                return [self._response(self.session(feed)) for feed in feeds]
            joined = {name: np.concatenate([feed[name] for feed in feeds]) for name in self.input_names}
            outputs = self.session(joined)
        except Exception as exc:  # noqa: BLE001 - the client gets the error, the model keeps serving
            if len(feeds) > 1:
                return [response for feed in feeds for response in self._run([feed])]
            return [pb_utils.InferenceResponse(error=pb_utils.TritonError(" ".join(str(exc).split())[:500]))]
        bounds = np.cumsum([0] + [len(next(iter(feed.values()))) for feed in feeds])
        return [self._response({name: array[start:stop] for name, array in outputs.items()})
                for start, stop in zip(bounds[:-1], bounds[1:])]

    def _response(self, outputs: dict[str, np.ndarray]):
        return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(name, np.ascontiguousarray(outputs[name]))
                                                          for name in self.output_names])

    def finalize(self) -> None:
        self.session.close()
