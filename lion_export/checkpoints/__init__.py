"""Checkpoints: the one place that reads and writes model files.

- lion_format.py: lion-export's own files (a config + tensors dict, or .safetensors + JSON), saved and loaded;
- public.py: files trained with the public LION code, read with the architecture inferred (`read_model`, which
  reads every accepted format and is what the commands use), or given (`load_state_dict_file`);
- files.py: what both share: safe torch / safetensors reads, one CheckpointError per failure, strict loading.

Import from here; the modules are the layout, this is the seam.
"""
from lion_export.checkpoints.files import CheckpointError
from lion_export.checkpoints.lion_format import (FORMAT, FORMAT_VERSION, checkpoint_sha256, load_checkpoint,
                                                 save_checkpoint, save_safetensors)
from lion_export.checkpoints.public import WEIGHTS, ReadOptions, infer_config, load_state_dict_file, read_model

__all__ = ["CheckpointError", "FORMAT", "FORMAT_VERSION", "checkpoint_sha256", "load_checkpoint", "save_checkpoint",
           "save_safetensors", "WEIGHTS", "ReadOptions", "infer_config", "load_state_dict_file", "read_model"]
