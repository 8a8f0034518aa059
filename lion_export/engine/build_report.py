"""What a build produced, the way trtexec users read it first: backend, targets, profiles, layers by type (plugin
layers counted), build time, engine size. The same record is the --report JSON and, read back from beside an
engine, part of `inspect model.engine`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import write_bytes_atomically
from ..build_record import build_record_path
from .header import EngineHeader
from .rtx_targets import TARGETS


@dataclass
class BuildReport:
    """One build. `plugin` says how the recurrent form's scan was built: "lion::SelectiveScan v1", "inlined
    function (--no-plugin)", or "none needed" for graphs without custom nodes. `dtype` is "int8" for a QDQ source
    file, which with `onnx` and `onnx_sha256` is how verify finds an INT8 engine's reference (build_record.py)."""

    backend: str
    version: str
    onnx: str
    engine: str
    mode: str
    dtype: str
    plugin: str
    scan_nodes: int                      # lion.SelectiveScan nodes: one per mixer (two in natural-order ViTs)
    network_layers: int
    plugin_layers: int
    layers_by_type: dict[str, int]
    profiles: dict[str, dict]
    arch: list[str]
    engine_bytes: int = 0
    onnx_sha256: str = ""                # ties the engine to its source: verify reads an INT8 engine's scales there
    parse_seconds: float = 0.0
    build_seconds: float = 0.0           # parsing + optimisation + serialisation
    workspace_bytes: int | None = None
    timing_cache: str | None = None
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)   # printed on stderr even with --quiet

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def write_json(self, path: str | Path) -> Path:
        return write_bytes_atomically(path, (json.dumps(self.to_dict(), indent=2) + "\n").encode())


def profile_lines(profiles: dict[str, dict]) -> list[str]:
    """One line per input: `profile NAME: min AxB, opt AxB, max AxB`."""
    lines = []
    for name, shapes in profiles.items():
        dims = ["x".join(map(str, shapes.get(k, []))) for k in ("min", "opt", "max")]
        lines.append(f"profile {name}: min {dims[0]}, opt {dims[1]}, max {dims[2]}")
    return lines


def print_build_report(report: BuildReport, console) -> None:
    """The summary after a build (stdout): a rich table on a terminal, plain text at full width otherwise."""
    from rich.markup import escape

    from ..console_output import print_table

    console.print(f"[bold]{escape(report.engine)}[/]  {report.engine_bytes / 2**20:.2f} MiB, built in "
                  f"{report.build_seconds:.1f} s by {escape(report.backend)} {escape(report.version)}")
    console.print("targets: " + ", ".join(report.arch))
    for line in profile_lines(report.profiles):
        console.print(escape(line))
    console.print(f"{report.network_layers} network layers, {report.plugin_layers} plugin layers "
                  f"(scan: {escape(report.plugin)})")
    print_table(console, ("layer type", "count"), [(kind, str(count)) for kind, count in report.layers_by_type.items()])
    for note in report.notes:
        console.print(f"note: {escape(note)}")


def print_engine_summary(header: EngineHeader, build: dict | None, console) -> None:
    """`inspect model.engine`: the header, and the build report when one lies beside the engine."""
    from rich.markup import escape

    console.print(f"[bold]{escape(header.path)}[/]  {header.file_bytes / 2**20:.2f} MiB {header.edition} engine, "
                  f"built by {header.edition} {header.version}"
                  + ("" if header.verified_layout else " (header layout of standard TensorRT: unconfirmed)"))
    if header.is_rtx:
        targets = [f"{name} ({TARGETS[name].gpus})" for name in header.targets]
        if header.unknown_target_bits:
            targets.append(f"unknown bits 0x{header.unknown_target_bits:02x}")
        console.print("targets: " + escape(", ".join(targets) or "none recorded"))
    else:
        console.print("targets: the GPU it was built on (standard TensorRT records no list)")
    if build is None:
        console.print(f"build report: none beside it ({escape(build_record_path(header.path).name)})")
        return
    console.print(escape(f"build report: {build.get('mode')} {build.get('dtype')} export {build.get('onnx')}, "
                         f"{build.get('network_layers')} layers, {build.get('plugin_layers')} plugin "
                         f"({build.get('plugin')}), built in {build.get('build_seconds', 0):.1f} s"))
    for line in profile_lines(build.get("profiles") or {}):
        console.print(escape(line))


__all__ = ["BuildReport", "profile_lines", "print_build_report", "print_engine_summary"]
