"""A real Triton Inference Server on 127.0.0.1: the `tritonserver` binary NVIDIA ships inside the nvidia-pytriton
wheel, started on a model repository and stopped by its process id.

That build carries the python backend only (no onnxruntime / tensorrt backend), so it serves python-backend models
and reports the others as not loadable, with Triton's own reason, from the repository index. It is started with
`--exit-on-error=false` (a model that cannot load must not take the others down) and
`--strict-readiness=false` (readiness then means "the server answers", which it does only once every model has
been tried: Triton loads the repository before it opens its endpoints). Its backend folder (the python backend
and the stub for this Python X.Y, linked from the wheel), a small virtual environment that makes the backend's
Python import what this process imports (`_python_environment`) and the log live in a work folder the caller owns,
or in a temporary one removed on exit, so nothing is left behind.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..serve_extra import EXTRA, ServingUnavailable

PACKAGE = "nvidia-pytriton"
STOP_GRACE_S = 15.0


class ServerError(RuntimeError):
    """The server exited or never became ready; the message ends with the tail of its log."""


@dataclass(frozen=True)
class ModelState:
    """One model of the repository index: its state (READY, UNAVAILABLE, ...) and Triton's reason when not ready."""

    name: str
    version: str
    state: str
    reason: str

    @property
    def ready(self) -> bool:
        return self.state == "READY"


@dataclass(frozen=True)
class ServerFiles:
    """Where the wheel keeps the server: the binary, its shared libraries, the python backend and its stubs."""

    binary: Path
    libraries: Path
    python_backend: Path
    stub: Path


def server_files() -> ServerFiles:
    """The tritonserver files of the installed nvidia-pytriton wheel (found without importing it), or
    ServingUnavailable naming what is missing."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise ServingUnavailable(f"{PACKAGE} is not installed; install the serving extra: {EXTRA}")
    package = Path(next(iter(spec.submodule_search_locations)))
    server = package / "tritonserver"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    files = ServerFiles(binary=server / "bin" / "tritonserver", libraries=package.parent / "nvidia_pytriton.libs",
                        python_backend=server / "backends" / "python",
                        stub=server / "python_backend_stubs" / version / "triton_python_backend_stub")
    for path in (files.binary, files.libraries, files.python_backend, files.stub):
        if not path.exists():
            raise ServingUnavailable(f"{PACKAGE} here lacks {path} (Python {version} needs its python backend stub)")
    return files


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports free on 127.0.0.1 now (the kernel's picks, all held open until each is chosen)."""
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]


def _backend_folder(files: ServerFiles, folder: Path) -> Path:
    """`folder/python/`: the python backend and the stub for this Python, linked from the wheel."""
    python = folder / "python"
    python.mkdir(parents=True, exist_ok=True)
    for source in (*files.python_backend.iterdir(), files.stub):
        if source.is_file():
            (python / source.name).unlink(missing_ok=True)
            (python / source.name).symlink_to(source)
    return folder


def _python_environment(folder: Path) -> Path:
    """A virtual environment folder whose site-packages adds this process's import path, for the python backend.

    The stub embeds the system's libpython X.Y in isolated mode (PYTHONPATH and PYTHONHOME are ignored) and takes
    its prefix from the `python3` first on PATH, so its model.py would import the system's packages, or none. A
    `python3` here (a link to this interpreter), a pyvenv.cfg and one .pth file that adds every entry of this
    process's sys.path make it import what this process imports: its virtual environment, a source checkout."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site_packages = folder / "lib" / version / "site-packages"
    site_packages.mkdir(parents=True, exist_ok=True)
    (folder / "bin").mkdir(exist_ok=True)
    (folder / "bin" / "python3").unlink(missing_ok=True)
    (folder / "bin" / "python3").symlink_to(sys.executable)
    (folder / "pyvenv.cfg").write_text(f"home = {Path(sys.base_prefix) / 'bin'}\n"
                                       "include-system-site-packages = false\n")
    paths = dict.fromkeys(os.path.abspath(p) for p in sys.path)
    (site_packages / "lion_export_serving.pth").write_text(
        "".join(f"import site; site.addsitedir({p!r})\n" for p in paths if os.path.isdir(p)))
    return folder


def _server_environment(files: ServerFiles, python: Path) -> dict[str, str]:
    """The server's environment: the wheel's libraries on LD_LIBRARY_PATH, `python`'s bin first on PATH."""
    return dict(os.environ,
                LD_LIBRARY_PATH=os.pathsep.join(p for p in (str(files.libraries), os.environ.get("LD_LIBRARY_PATH"))
                                                if p),
                PATH=os.pathsep.join(p for p in (str(python / "bin"), os.environ.get("PATH")) if p))


class TritonServer:
    """`with TritonServer(repo) as server:` a ready server on 127.0.0.1 (free ports unless given); `.http_url`,
    `.grpc_url`, `.pid`, `.model_states()`, `.log_text()`; leaving the block stops it (SIGINT, then SIGKILL)."""

    def __init__(self, repo: str | Path, http_port: int | None = None, grpc_port: int | None = None, *,
                 timeout: float = 120.0, log_path: str | Path | None = None,
                 work_dir: str | Path | None = None) -> None:
        self.repo = Path(repo).resolve()
        if not self.repo.is_dir():
            raise FileNotFoundError(f"{repo}: no such model repository (a folder)")
        spare = iter(free_ports(2))
        self.http_port = http_port or next(spare)
        self.grpc_port = grpc_port or next(spare)
        self.timeout = timeout
        self.work_dir = None if work_dir is None else Path(work_dir)
        self.log_path = None if log_path is None else Path(log_path)
        self.process: subprocess.Popen | None = None
        self._own_dir: Path | None = None
        self._last_log = ""

    @property
    def pid(self) -> int:
        if self.process is None:
            raise ServerError("the server is not running")
        return self.process.pid

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def command(self, backends: Path) -> list[str]:
        """The tritonserver command line."""
        return [str(server_files().binary), f"--model-repository={self.repo}", f"--backend-directory={backends}",
                "--http-address=127.0.0.1", f"--http-port={self.http_port}",
                "--grpc-address=127.0.0.1", f"--grpc-port={self.grpc_port}",
                "--allow-metrics=false", "--exit-on-error=false", "--strict-readiness=false",
                "--exit-timeout-secs=5"]

    def start(self) -> "TritonServer":
        """Start the server and wait until it answers; ServerError with the log's tail if it never does."""
        files = server_files()
        if self.work_dir is None:
            self._own_dir = Path(tempfile.mkdtemp(prefix="lion-triton-"))
        work = self.work_dir or self._own_dir
        work.mkdir(parents=True, exist_ok=True)
        backends = _backend_folder(files, work / "backends")
        if self.log_path is None:
            self.log_path = work / "tritonserver.log"
        env = _server_environment(files, _python_environment(work / "python"))
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.command(backends), stdout=log, stderr=subprocess.STDOUT, env=env,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(f"tritonserver exited with code {self.process.returncode} before it was ready; "
                                  f"its log ends:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise ServerError(f"tritonserver was not ready after {self.timeout:.0f} s; its log ends:\n{self.log_tail()}")

    def log_text(self) -> str:
        """Everything the server has logged so far (kept after a temporary work folder is removed)."""
        if self.log_path is not None and self.log_path.is_file():
            self._last_log = self.log_path.read_text(errors="replace")
        return self._last_log

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def model_states(self) -> list[ModelState]:
        """Every model of the repository with its state and, for one that did not load, Triton's reason."""
        request = urllib.request.Request(f"http://{self.http_url}/v2/repository/index", data=b"{}", method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:
            index = json.loads(answer.read())
        return [ModelState(m["name"], str(m.get("version", "")), m.get("state", "UNKNOWN"), m.get("reason", ""))
                for m in index]

    def stop(self) -> int | None:
        """SIGINT to the server's process id, SIGKILL (to its process group: the backend stubs too) after a grace
        period; returns its exit code. Removes a temporary work folder."""
        code = None
        if self.process is not None:
            if self.process.poll() is None:
                os.kill(self.process.pid, signal.SIGINT)
                try:
                    self.process.wait(STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait()
            code = self.process.returncode
        self.log_text()
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)
            self._own_dir = None
            self.log_path = None
        return code

    def __enter__(self) -> "TritonServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


__all__ = ["ModelState", "ServerError", "ServerFiles", "TritonServer", "free_ports", "server_files"]
