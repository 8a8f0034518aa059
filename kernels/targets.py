"""The GPU targets kernels are compiled for ahead of time, by name ("sm_87"), in one registry.

A target is a CUDA compute capability; Triton turns it into PTX for that architecture and, with the ptxas it ships in
its NVIDIA backend, into a cubin. Only architectures the bundled ptxas and Triton's code generator both support are
listed, so a name here always compiles.
"""
from __future__ import annotations

from dataclasses import dataclass

from triton.backends.compiler import GPUTarget

WARP_SIZE = 32


@dataclass(frozen=True)
class Target:
    name: str             # "sm_87"
    capability: int       # 87
    devices: str          # what runs it, for help texts

    def gpu_target(self) -> GPUTarget:
        return GPUTarget("cuda", self.capability, WARP_SIZE)


TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("sm_80", 80, "A100, A30"),
    Target("sm_86", 86, "RTX 30xx, A10, A40"),
    Target("sm_87", 87, "Jetson AGX Orin, Orin NX, Orin Nano"),
    Target("sm_89", 89, "L4, L40, RTX 40xx"),
    Target("sm_90", 90, "H100, H200, GH200"),
)}


def target(name: str) -> Target:
    """The target called `name` ("sm_87" or "87"); ValueError naming the known ones otherwise."""
    key = name if name.startswith("sm_") else f"sm_{name}"
    if key not in TARGETS:
        raise ValueError(f"unknown GPU target {name!r}; known targets: {', '.join(TARGETS)}")
    return TARGETS[key]
