"""The GPU targets kernels are compiled for ahead of time, by name ("sm_87"), in one registry.

A target is a CUDA compute capability; Triton turns it into PTX for that architecture and, with the ptxas it ships in
its NVIDIA backend, into a cubin. Only architectures the bundled ptxas and Triton's code generator both support are
listed, so a name here always compiles.

The PTX ISA version decides which CUDA drivers can load the PTX (TensorRT's AOT path embeds PTX, which the driver on
the device JIT-compiles). Triton's default follows its bundled ptxas (CUDA 12.9 for sm_8x -> PTX 8.8, CUDA 13.x for
sm_90 -> PTX 9.x), which only the newest drivers load; JetPack 6 on Jetson Orin ships CUDA 12.2 - 12.6. So the
default here is PTX 8.0, which every CUDA 12 driver loads and which sm_90a needs at least.
"""
from __future__ import annotations

from dataclasses import dataclass

from triton.backends.compiler import GPUTarget

WARP_SIZE = 32
#: PTX ISA versions as Triton spells them (8.0 -> 80); the lowest is the lowest the kernels are checked to build with
DEFAULT_PTX_VERSION = 80
MIN_PTX_VERSION = 80
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


def parse_ptx_version(text: str) -> int:
    """"8.5" (or "85") -> 85; ValueError for anything else."""
    major, dot, minor = text.strip().partition(".")
    if dot and major.isdigit() and minor.isdigit() and len(minor) == 1:
        return int(major) * 10 + int(minor)
    if not dot and text.strip().isdigit() and len(text.strip()) == 2:
        return int(text)
    raise ValueError(f"a PTX version looks like 8.0 or 8.5, got {text!r}")


def ptx_version_text(version: int) -> str:
    return f"{version // 10}.{version % 10}"


def ptxas_cuda_version(gpu: Target) -> str:
    """The CUDA release of the ptxas Triton bundles for this target ("12.9"): cubins from it need a driver of that
    major version (CUDA minor-version compatibility)."""
    from triton.backends.nvidia.compiler import get_ptxas

    return get_ptxas(gpu.capability).version


def max_ptx_version(gpu: Target) -> int:
    """The newest PTX ISA the ptxas Triton bundles for this target assembles (from its CUDA release)."""
    from triton.backends.nvidia.compiler import ptx_get_version

    return ptx_get_version(ptxas_cuda_version(gpu))


def check_ptx_version(gpu: Target, version: int) -> None:
    """ValueError unless this target can be built for that PTX ISA (LLVM aborts the process on a bad pair)."""
    newest = max_ptx_version(gpu)
    if not MIN_PTX_VERSION <= version <= newest:
        raise ValueError(f"PTX version {ptx_version_text(version)} is not available for {gpu.name}: choose "
                         f"{ptx_version_text(MIN_PTX_VERSION)} .. {ptx_version_text(newest)}")


def min_cuda_driver(version: int) -> str:
    """The oldest CUDA driver that loads PTX of this ISA version (CUDA 12.0 -> 8.0, 12.5/12.6 -> 8.5, 13.0 -> 9.0)."""
    major, minor = divmod(version, 10)
    if major == 8:
        return f"12.{minor}" if minor <= 5 else f"12.{minor + 1}"
    return f"{13 + major - 9}.{minor}"
