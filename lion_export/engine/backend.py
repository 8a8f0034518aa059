"""Which TensorRT this machine has, imported on demand: the one module that imports `tensorrt` or TensorRT-RTX.

Standard TensorRT 10.x/11.x (`import tensorrt`: JetPack on Jetson, NVIDIA's wheels or containers on servers) is
preferred when present; otherwise TensorRT-RTX (`tensorrt_rtx_bindings`, from pip: RTX GPUs, and builds without any
GPU). Both have the same Builder / OnnxParser / IPluginV3 API, so everything above this module holds a `Backend` and
never asks which one it is except where the two really differ (compute-capability targets, timing caches).

It also owns a TensorRT-RTX 1.7 parser defect, seen on every plugin parse here: the ONNX parser dlopen()s
`libtensorrt_rtx.so`, the wheel ships only `libtensorrt_rtx.so.1`, and the process aborts on the first node bound
to a plugin. The fix is a symlink beside the library, made here before the first parse, so a user never meets it.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

STANDARD_MODULE = "tensorrt"
RTX_MODULE = "tensorrt_rtx_bindings"
RTX_LIBS_MODULE = "tensorrt_rtx_libs"
RTX_LIBRARY = "libtensorrt_rtx.so.1"
RTX_PARSER_WANTS = "libtensorrt_rtx.so"
INSTALL_HINT = ('pip install "lion-export[tensorrt-rtx]" (TensorRT-RTX: RTX GPUs, or builds on a machine without '
                "a GPU), or use JetPack's / NVIDIA's TensorRT 10+ (module `tensorrt`)")


class BackendError(ValueError):
    """No usable TensorRT: not installed, or installed in a way this process cannot use."""


@dataclass(frozen=True)
class Backend:
    """An imported TensorRT: the module (`trt` everywhere in this package), its edition and version."""

    module: ModuleType
    edition: str          # "TensorRT" or "TensorRT-RTX"
    version: str

    @property
    def is_rtx(self) -> bool:
        return self.edition == "TensorRT-RTX"

    def describe(self) -> str:
        return f"{self.edition} {self.version}"


_loaded: Backend | None = None


def load_backend() -> Backend:
    """Import standard TensorRT if it imports, else TensorRT-RTX; BackendError (one line) when neither does."""
    global _loaded
    if _loaded is not None:
        return _loaded
    failures = []
    for module_name, edition in ((STANDARD_MODULE, "TensorRT"), (RTX_MODULE, "TensorRT-RTX")):
        try:
            module = importlib.import_module(module_name)
        except (ImportError, OSError) as exc:    # OSError: bindings present, shared libraries missing
            failures.append(f"{module_name}: {' '.join(str(exc).split())}")
            continue
        _loaded = Backend(module, edition, str(getattr(module, "__version__", "unknown")))
        return _loaded
    raise BackendError(f"no TensorRT found ({'; '.join(failures)}); install one: {INSTALL_HINT}")


def rtx_library_dir() -> Path:
    """The folder holding libtensorrt_rtx.so.1 (the tensorrt_rtx_libs package)."""
    libs = importlib.import_module(RTX_LIBS_MODULE)
    return Path(libs.__file__).resolve().parent


def _resolves(link: Path) -> bool:
    return link.exists()                        # follows the symlink: a dangling one does not count


def _on_library_path() -> Path | None:
    """A folder on LD_LIBRARY_PATH (read by the loader at process start) that already resolves the name."""
    for folder in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep):
        if folder and _resolves(Path(folder) / RTX_PARSER_WANTS):
            return Path(folder)
    return None


def link_cache_dir() -> Path:
    """Where the fallback link lives when the libs folder is read-only: a folder to put on LD_LIBRARY_PATH."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "lion-export" / "tensorrt-rtx-lib"


def ensure_rtx_parser_library(library_dir: Path | None = None) -> Path:
    """Make `libtensorrt_rtx.so` resolve for TensorRT-RTX's ONNX parser before anything is parsed.

    The parser's RPATH is $ORIGIN, so a relative symlink beside libtensorrt_rtx.so.1 is found even when made inside
    the running process. Where that folder is read-only, a link in a per-user cache folder on LD_LIBRARY_PATH does
    the same, but the loader reads that variable only at process start: BackendError then says exactly what to
    run (the link is already made). Returns the folder that resolves the name.
    """
    folder = rtx_library_dir() if library_dir is None else library_dir
    link = folder / RTX_PARSER_WANTS
    if _resolves(link):
        return folder
    try:
        if link.is_symlink():                    # dangling: a stale link from another install
            link.unlink()
        link.symlink_to(RTX_LIBRARY)
        return folder
    except FileExistsError:                      # another process made it meanwhile
        if _resolves(link):
            return folder
    except OSError:
        pass
    on_path = _on_library_path()
    if on_path is not None:
        return on_path
    cache = prepare_link_cache(folder)
    raise BackendError(f"TensorRT-RTX's ONNX parser needs {RTX_PARSER_WANTS} beside {RTX_LIBRARY} and {folder} is "
                       f"not writable: start Python with LD_LIBRARY_PATH={cache} (a link to it is there), "
                       f"or run `ln -s {RTX_LIBRARY} {link}` once, or build with --no-plugin")


def prepare_link_cache(library_dir: Path) -> Path:
    """The cache folder holding `libtensorrt_rtx.so -> <library_dir>/libtensorrt_rtx.so.1` (made if missing)."""
    cache = link_cache_dir()
    link = cache / RTX_PARSER_WANTS
    if not _resolves(link) or link.resolve() != (library_dir / RTX_LIBRARY).resolve():
        cache.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(library_dir / RTX_LIBRARY)
    return cache


def collecting_logger(trt: Any, verbose_log: Any) -> Any:
    """A trt.ILogger keeping errors (for messages) and passing every line to `verbose_log` when given."""

    class Collector(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity: Any, msg: str) -> None:
            if severity in (trt.ILogger.ERROR, trt.ILogger.INTERNAL_ERROR):
                self.errors.append(" ".join(str(msg).split()))
            if verbose_log is not None:
                verbose_log(f"[{str(severity).rsplit('.', 1)[-1]}] {msg}")

    return Collector()


def register_plugin(backend: Backend, *, for_parsing: bool = True) -> None:
    """Register `lion::SelectiveScan` with this TensorRT (idempotent): needed before parsing a recurrent export
    that should bind the plugin (for_parsing: TensorRT-RTX's parser library link is made first), and before
    deserializing an engine that holds it."""
    from lion_export import plugins

    if backend.is_rtx and for_parsing:
        ensure_rtx_parser_library()
    plugins.register(backend.module)


__all__ = ["Backend", "BackendError", "collecting_logger", "INSTALL_HINT", "load_backend", "ensure_rtx_parser_library",
           "prepare_link_cache", "link_cache_dir", "rtx_library_dir", "register_plugin"]
