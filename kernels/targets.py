"""The GPU targets kernels are compiled for ahead of time, by name ("sm_87"), in one registry.

A target is a CUDA compute capability; Triton turns it into PTX for that architecture and, with the ptxas it ships in
its NVIDIA backend, into a cubin. Only architectures the bundled ptxas and Triton's code generator both support are
listed, so a name here always compiles.
"""
from __future__ import annotations

from dataclasses import dataclass

from triton.backends.compiler import GPUTarget

WARP_SIZE = 32
#: shared memory a block may use without the launcher opting in (cuFuncSetAttribute MAX_DYNAMIC_SHARED_SIZE_BYTES)
DEFAULT_SHARED_MEM = 48 * 1024


@dataclass(frozen=True)
class Target:
    name: str             # "sm_87"
    capability: int       # 87
    devices: str          # what runs it, for help texts
    max_shared_mem: int   # bytes per block with the opt-in (CUDA programming guide, compute capabilities table)

    def gpu_target(self) -> GPUTarget:
        return GPUTarget("cuda", self.capability, WARP_SIZE)


TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("sm_80", 80, "A100, A30", 163 * 1024),
    Target("sm_86", 86, "RTX 30xx, A10, A40", 99 * 1024),
    Target("sm_87", 87, "Jetson AGX Orin, Orin NX, Orin Nano", 163 * 1024),
    Target("sm_89", 89, "L4, L40, RTX 40xx", 99 * 1024),
    Target("sm_90", 90, "H100, H200, GH200", 227 * 1024),
)}


def target(name: str) -> Target:
    """The target called `name` ("sm_87" or "87"); ValueError naming the known ones otherwise."""
    key = name if name.startswith("sm_") else f"sm_{name}"
    if key not in TARGETS:
        raise ValueError(f"unknown GPU target {name!r}; known targets: {', '.join(TARGETS)}")
    return TARGETS[key]
