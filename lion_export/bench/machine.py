"""What a benchmark ran on: CPU, cores, memory, GPU and library versions, recorded in bench.json beside the numbers
(a latency means nothing without the machine that produced it)."""
from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any

LIBRARIES = ("torch", "onnx", "onnxruntime", "onnxruntime-gpu", "numpy", "triton", "tensorrt", "tensorrt-rtx")


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as handle:
            kib = next(int(line.split()[1]) for line in handle if line.startswith("MemTotal:"))
        return round(kib / 2**20, 1)
    except (OSError, StopIteration):
        return None


def _versions() -> dict[str, str]:
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def describe_machine() -> dict[str, Any]:
    """A JSON-safe description of this machine (imports torch for the GPU query)."""
    import torch

    from .. import __version__

    gpu = None
    if torch.cuda.is_available():
        gpu = {"name": torch.cuda.get_device_name(), "capability": "sm_%d%d" % torch.cuda.get_device_capability(),
               "memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)}
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": _cpu_name(), "cores": os.cpu_count(), "usable_cores": usable, "memory_gib": _memory_gib(),
            "gpu": gpu, "os": platform.platform(), "python": platform.python_version(),
            "lion_export": __version__, "libraries": _versions()}


__all__ = ["describe_machine"]
