"""The package's layering, read statically from the imports (every `import` statement, lazy ones included).

Core (variants, forms, models, checkpoints, kernels and the scan op's contract) is what a PyTorch user needs: it
must not reach up into export / verify / engine / bench / cli, nor import ONNX or TensorRT. kernels/ and plugins/
are top-level folders linked into the package, so a relative import there would be resolved against whichever
path the interpreter took; they import only absolute `lion_export.` names.
"""
from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lion_export"
CORE = ("lion_export.variants", "lion_export.forms", "lion_export.models", "lion_export.checkpoints",
        "lion_export.kernels", "lion_export.scan_op", "lion_export.dtypes", "lion_export.artefacts")
UPPER = ("lion_export.export", "lion_export.verify", "lion_export.engine", "lion_export.bench", "lion_export.cli",
         "lion_export.plugins", "lion_export.graph_summary")
GRAPH_LIBRARIES = ("onnx", "onnxruntime", "onnxscript", "onnx_ir", "tensorrt", "tensorrt_rtx_bindings",
                   "tensorrt_rtx_libs")
LINKED = ("lion_export.kernels", "lion_export.plugins")


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name, found through the kernels/ and plugins/ links."""
    found = {}
    for folder, _, files in os.walk(PACKAGE, followlinks=True):
        parts = ["lion_export", *Path(folder).relative_to(PACKAGE).parts]
        for name in files:
            if name.endswith(".py"):
                found[".".join(parts if name == "__init__.py" else [*parts, name[:-3]])] = Path(folder) / name
    return found


MODULES = _modules()


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _imports(module: str) -> list[tuple[str, int]]:
    """(absolute name imported, relative level as written) for every import in `module`; `from a import b` gives
    a.b when that is a module of the package, else a."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((sub if sub in MODULES else target, node.level))
    return found


def test_the_walk_sees_the_linked_folders() -> None:
    """The checks below read kernels/ and plugins/ too (else they would pass on nothing)."""
    assert {"lion_export.kernels.scan", "lion_export.kernels.aot.specs", "lion_export.plugins.selective_scan",
            "lion_export.checkpoints.public", "lion_export.forms"} <= set(MODULES)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _within(m, CORE)))
def test_core_never_imports_a_layer_above_or_a_graph_library(module: str) -> None:
    bad = [name for name, _ in _imports(module) if _within(name, UPPER) or _within(name, GRAPH_LIBRARIES)]
    assert not bad, f"{module} imports {bad}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _within(m, LINKED)))
def test_linked_folders_import_absolute_package_names(module: str) -> None:
    relative = [name for name, level in _imports(module) if level]
    assert not relative, f"{module} has relative imports of {relative}; write `from lion_export.... import`"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _within(m, ("lion_export.plugins",))))
def test_plugins_only_reach_down(module: str) -> None:
    """Plugins run inside TensorRT: they may use the kernels and the op's contract, never the exporter or verifier."""
    above = ("lion_export.export", "lion_export.verify", "lion_export.engine", "lion_export.bench", "lion_export.cli")
    bad = [name for name, _ in _imports(module) if _within(name, above)]
    assert not bad, f"{module} imports {bad}"


def test_relative_imports_resolve() -> None:
    """The resolver itself: `from ..x import y` two levels down means the grandparent package's x.y."""
    assert ("lion_export.models.presets", 1) in _imports("lion_export.models")
    assert ("lion_export.forms", 2) in _imports("lion_export.models.attention")


RUNNERS = ("lion_export.runners",)
#: the only pieces of the engine layer a runner needs: what an engine file says, and which TensorRT runs it
ENGINE_FOR_RUNNERS = ("lion_export.engine.header", "lion_export.engine.backend", "lion_export.engine.rtx_targets",
                      "lion_export.engine")


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _within(m, RUNNERS)))
def test_runners_sit_below_verify_bench_and_the_cli(module: str) -> None:
    """runners/ serves verify, bench and applications alike, so it never reaches up into them; of the engine layer
    it uses only the header and backend modules (the engine's build never runs an engine)."""
    imported = [name for name, _ in _imports(module)]
    above = [n for n in imported if _within(n, ("lion_export.verify", "lion_export.bench", "lion_export.cli"))]
    engine = [n for n in imported if _within(n, ("lion_export.engine",)) and n not in ENGINE_FOR_RUNNERS]
    assert not above and not engine, f"{module} imports {above + engine}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES
                                          if _within(m, ("lion_export.verify", "lion_export.engine"))))
def test_verify_and_engine_share_runners_without_importing_each_other(module: str) -> None:
    """Their runners live in runners/, so the import loop between the two (the TensorRT runner in engine/ using
    verify's inputs, verify's file runner using engine/) is gone: verify never imports the engine layer, and the
    engine layer takes from verify only the image geometry of case_inputs (tokens <-> image sizes)."""
    imported = [name for name, _ in _imports(module)]
    if _within(module, ("lion_export.verify",)):
        bad = [n for n in imported if _within(n, ("lion_export.engine",))]
    else:
        bad = [n for n in imported if _within(n, ("lion_export.verify",)) and n != "lion_export.verify.case_inputs"]
    assert not bad, f"{module} imports {bad}"


def test_the_runner_rule_sees_the_runners() -> None:
    assert {"lion_export.runners.base", "lion_export.runners.trt_engine", "lion_export.runners.session"} <= set(MODULES)
    assert ("lion_export.engine.header", 2) in _imports("lion_export.runners.trt_engine")


@pytest.mark.parametrize("module", sorted(m for m in MODULES if not _within(m, ("lion_export.serving",
                                                                                "lion_export.cli"))))
def test_only_the_cli_imports_serving(module: str) -> None:
    """serving/ sits above the runners and below the CLI: a library module that imported it would pull the
    optional server packages' code paths into every user of lion_export."""
    bad = [name for name, _ in _imports(module) if _within(name, ("lion_export.serving",))]
    assert not bad, f"{module} imports {bad}"


def test_the_serving_rule_sees_serving() -> None:
    assert ("lion_export.serving.repository", 0) in _imports("lion_export.cli")
    assert "lion_export.serving.server" in MODULES
