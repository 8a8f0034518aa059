"""The TensorRT half of the pipeline: graph (ONNX) -> engine (engines run in lion_export/runners/trt_engine.py).

One concept per module: `backend` (which TensorRT is installed, imported only here and only on demand),
`targets` (TensorRT-RTX compute capabilities), `profiles` (optimization profiles from options and from the file),
`graph_file` (the ONNX file, checked before TensorRT reads it), `build` (parse, configure, build, write),
`progress` (the builder's progress monitor), `report` (what a build produced), `header` (what an engine file says
about itself without a GPU).
Nothing here is imported by the core; nothing here imports TensorRT at import time.
"""
