"""TensorRT plugins (installed as `lion_export.plugins`).

Home of the `lion::SelectiveScan` plugin that the TensorRT ONNX parser binds to the recurrent export's custom node
(see ../shared/TENSORRT-NOTES.md). It lands with the TensorRT engine work; the exported node already carries
`plugin_namespace="lion"` so that graphs exported today bind to it unchanged.
"""
