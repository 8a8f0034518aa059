"""TensorRT-RTX compute capabilities: the `--arch` names, the builder's enum names and the engine header's bits.

TensorRT-RTX compiles ahead of time for a list of targets (IBuilderConfig.set_compute_capability); it has no
sm_87 (Jetson Orin) or sm_90 (Hopper): those need standard TensorRT, which builds for the GPU it runs on. The
engine header records the targets as a bit mask in byte 32 (engine/header.py), so `inspect` can say which
GPUs an engine runs on without a GPU. One table serves the option parser, the builder and the header reader.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """One TensorRT-RTX compute capability."""

    name: str          # the --arch spelling, e.g. "sm_86"
    enum_name: str     # the member of tensorrt_rtx_bindings.ComputeCapability, e.g. "SM86"
    header_bit: int    # its bit in byte 32 of the engine header
    gpus: str          # which GPUs that is, for messages and `inspect`
    fp32_gemm: bool = True   # SM75 refuses fp32 GEMMs: only an all-fp16 graph builds for Turing


TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("sm_75", "SM75", 0x01, "Turing (RTX 20xx)", fp32_gemm=False),
    Target("sm_80", "SM80", 0x02, "Ampere data centre (A100, A30)"),
    Target("sm_86", "SM86", 0x04, "Ampere (RTX 30xx, A10, A40)"),
    Target("sm_89", "SM89", 0x08, "Ada (RTX 40xx, L4, L40)"),
    Target("sm_120", "SM120", 0x10, "Blackwell (RTX 50xx, RTX PRO)"),
    Target("sm_121", "SM121", 0x20, "Blackwell (DGX Spark, GB10)"),
)}

# Every target that builds any export (fp32 graphs hold fp32 GEMMs, which sm_75 refuses): the default of `build`.
DEFAULT_TARGETS: tuple[str, ...] = tuple(name for name, t in TARGETS.items() if t.fp32_gemm)


class TargetError(ValueError):
    """An --arch list naming an unknown target, or one the graph cannot be built for."""


def parse_targets(text: str | None, *, graph_dtype: str) -> list[Target]:
    """The targets of an --arch list such as "sm_86,sm_89" (None: DEFAULT_TARGETS); `86` and `sm86` are accepted
    too. An unknown name lists the valid ones; sm_75 with an fp32 graph is refused before building."""
    names = DEFAULT_TARGETS if text is None else [part.strip().lower() for part in text.split(",") if part.strip()]
    if not names:
        raise TargetError(f"--arch needs at least one target; valid: {', '.join(TARGETS)}")
    targets = []
    for name in names:
        spelled = name if name.startswith("sm_") else "sm_" + name.removeprefix("sm")
        if spelled not in TARGETS:
            raise TargetError(f"unknown --arch {name!r}; TensorRT-RTX targets: {', '.join(TARGETS)} "
                              "(sm_87 Jetson and sm_90 Hopper need standard TensorRT)")
        target = TARGETS[spelled]
        if not target.fp32_gemm and graph_dtype != "fp16":
            advice = ("export with --dtype fp16" if graph_dtype != "int8" else
                      "an INT8 file keeps its other layers fp32: build it for another target")
            raise TargetError(f"--arch {target.name} ({target.gpus}) builds only fp16 graphs (no fp32 GEMMs on "
                              f"TensorRT-RTX for it) and this file is {graph_dtype}: {advice}")
        if target not in targets:
            targets.append(target)
    return targets


def targets_from_mask(mask: int) -> tuple[list[Target], int]:
    """The targets whose bits are set in an engine header's mask, and the bits no known target owns."""
    known = [t for t in TARGETS.values() if mask & t.header_bit]
    rest = mask & ~sum(t.header_bit for t in TARGETS.values())
    return known, rest


__all__ = ["Target", "TARGETS", "DEFAULT_TARGETS", "TargetError", "parse_targets", "targets_from_mask"]
