"""Serving what was exported: a Triton Inference Server model repository (`repository.py`, with each model's
config in `model_config.py` and the artefact's signature in `signature.py`; `python_model.py` is the python
backend's model.py), and a local server to run it (`server.py`: the tritonserver binary of the nvidia-pytriton
wheel).

It sits above runners/ and below the CLI: nothing else in the package imports it. tritonclient and nvidia-pytriton
are optional (the `serve` extra) and imported only inside the functions that need them; a missing one is a
ServingUnavailable naming the extra (`extra.py`).
"""
