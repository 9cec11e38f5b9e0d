"""A local stand-in for E2B's code-interpreter server, so the real E2B SDK can be tested offline.

It speaks the part of the code-interpreter HTTP protocol that `AsyncSandbox.run_code` uses:
`POST /execute` with `{"code", "context_id", "language", "env_vars"}` answers with
newline-delimited JSON messages of type `stdout`, `stderr`, `result` (the value of the cell's
last expression, as Jupyter would show it), `error` (`name`, `value`, `traceback`) and finally
`end_of_execution`; `GET /health` answers 204 like envd's. Each cell runs in a fresh local
sandbox (bubblewrap + cgroup) through a small runner that mimics a Jupyter cell: execute the
statements, evaluate a trailing expression, report an uncaught exception.

Point the SDK at it with debug mode: `AsyncSandbox.create(debug=True, sandbox_url=server.url)`,
or `E2B_DEBUG=true E2B_SANDBOX_URL=http://127.0.0.1:PORT`. Debug mode skips the control-plane
API entirely (no create/kill calls), so only this server is contacted. It listens on loopback
only and is for tests and benchmarks, not production.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import ipaddress
import json
import logging
import socket
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn
from pydantic import BaseModel, ConfigDict, JsonValue, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tools.sandbox.base import SandboxLimits, SandboxResult
from tools.sandbox.local import LocalSandbox

__all__ = ["ExecuteRequest", "ExecutorServer", "create_app", "main"]

log = logging.getLogger(__name__)

_DIR = ".e2b-exec"
_REQUEST = f"{_DIR}/request.json"
_RESULT = f"{_DIR}/result.json"
_RUNNER_PATH = f"{_DIR}/runner.py"
# Runs inside the sandbox: one Jupyter-like cell. The outcome goes to a file (not to stdout),
# so the cell's own output stays untouched; the host reads it back without following links.
_RUNNER = f"""\
import ast, json, os, sys, traceback

def main():
    with open({_REQUEST!r}) as f:
        req = json.load(f)
    os.remove({_REQUEST!r})
    os.environ.update(req.get("env_vars") or {{}})
    outcome = {{}}
    namespace = {{"__name__": "__main__", "__builtins__": __builtins__}}
    try:
        tree = ast.parse(req["code"], "<cell>")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        exec(compile(tree, "<cell>", "exec"), namespace)
        if last is not None:
            value = eval(compile(last, "<cell>", "eval"), namespace)
            if value is not None:
                outcome["result"] = repr(value)
    except BaseException as exc:
        outcome["error"] = {{
            "name": type(exc).__name__,
            "value": str(exc),
            "traceback": traceback.format_exc(),
        }}
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    with open({_RESULT!r}, "w") as f:
        json.dump(outcome, f)

main()
"""


class ExecuteRequest(BaseModel):
    """The body of `POST /execute`, as the SDK sends it."""

    model_config = ConfigDict(extra="ignore")

    code: str
    context_id: str | None = None
    language: str | None = None
    env_vars: dict[str, str] | None = None


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


_CELL_LIMITS = SandboxLimits(
    timeout_s=120,
    cpu_s=120,
    memory_mb=1024,
    file_size_mb=1024,
    max_output_bytes=4 * 1024 * 1024,
    max_processes=128,
)
"""What bounds a cell as a whole when the app is given no limits (the cell applies the caller's
limits to the command it runs)."""

type _Message = dict[str, JsonValue]


async def _parse_request(request: Request) -> ExecuteRequest | Response:
    """The request body, or the 400 the SDK gets for one it cannot have meant."""
    try:
        body = ExecuteRequest.model_validate(await request.json())
    except (ValidationError, ValueError) as exc:
        return JSONResponse({"message": f"invalid request: {exc}"}, status_code=400)
    if body.language not in (None, "python", "py"):
        return JSONResponse(
            {"message": f"language {body.language!r} is not supported by this executor"},
            status_code=400,
        )
    return body


def _cell_outcome(result: SandboxResult) -> dict[str, JsonValue]:
    """What the runner wrote back, or a `KernelDied` error when it wrote nothing.

    A cell that never wrote its outcome died; it says how (as Jupyter reports a dead kernel), so
    the SDK always gets an outcome.
    """
    outcome: dict[str, JsonValue] = {}
    try:
        parsed = json.loads(result.files.get(_RESULT, "{}"))
        if isinstance(parsed, dict):
            outcome = parsed
    except ValueError:
        outcome = {}
    if outcome:
        return outcome
    reason = "timed out" if result.timed_out else f"exited with {result.exit_code}"
    return {
        "error": {
            "name": "KernelDied",
            "value": f"The execution {reason} before the cell finished "
            f"(limits hit: {', '.join(result.limits_hit) or 'none'}).",
            "traceback": "",
        }
    }


def _messages(
    result: SandboxResult, outcome: dict[str, JsonValue], execution_count: int
) -> list[_Message]:
    """The cell's stream in the order the SDK expects it, ending with `end_of_execution`."""
    messages: list[_Message] = [
        {"type": "number_of_executions", "execution_count": execution_count}
    ]
    if result.stdout:
        messages.append({"type": "stdout", "text": result.stdout, "timestamp": _now()})
    if result.stderr:
        messages.append({"type": "stderr", "text": result.stderr, "timestamp": _now()})
    if isinstance(outcome.get("result"), str):
        messages.append({"type": "result", "text": outcome["result"], "is_main_result": True})
    error = outcome.get("error")
    if isinstance(error, dict):
        messages.append(
            {
                "type": "error",
                "name": str(error.get("name", "")),
                "value": str(error.get("value", "")),
                "traceback": str(error.get("traceback", "")),
            }
        )
    messages.append({"type": "end_of_execution"})
    return messages


async def _ndjson(messages: list[_Message]) -> AsyncIterator[bytes]:
    for message in messages:
        yield json.dumps(message).encode() + b"\n"


class _Executor:
    """The app's routes and state: the sandbox, the cells' limits and the execution counter.

    The counter lives with the routes because the SDK numbers cells by it across requests.
    """

    def __init__(self, sandbox: LocalSandbox, limits: SandboxLimits) -> None:
        self.sandbox = sandbox
        self.limits = limits
        self.executions = 0

    async def health(self, request: Request) -> Response:
        return Response(status_code=204)

    async def contexts(self, request: Request) -> Response:
        return JSONResponse([])

    async def execute(self, request: Request) -> Response:
        body = await _parse_request(request)
        if isinstance(body, Response):
            return body
        self.executions += 1
        files = {
            _RUNNER_PATH: _RUNNER,
            _REQUEST: json.dumps({"code": body.code, "env_vars": body.env_vars or {}}),
        }
        sandbox = self.sandbox
        result = await sandbox.run(
            files, [sandbox.python, "-I", _RUNNER_PATH], self.limits, collect=[_RESULT]
        )
        messages = _messages(result, _cell_outcome(result), self.executions)
        return StreamingResponse(_ndjson(messages), media_type="application/x-ndjson")


def create_app(sandbox: LocalSandbox, limits: SandboxLimits | None = None) -> Starlette:
    """The executor as an ASGI app; every cell runs in `sandbox` under `limits`."""
    executor = _Executor(sandbox, limits or _CELL_LIMITS)
    return Starlette(
        routes=[
            Route("/health", executor.health, methods=["GET"]),
            Route("/contexts", executor.contexts, methods=["GET"]),
            Route("/execute", executor.execute, methods=["POST"]),
        ]
    )


class ExecutorServer:
    """Runs the executor with uvicorn in a background thread on a loopback port.

    `with ExecutorServer() as server: ... server.url ...`; the sandbox is created in the server's
    own event loop (the local sandbox's warm pool is bound to one loop).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        limits: SandboxLimits | None = None,
        pool_size: int = 0,
        workspace_root: Path | None = None,
    ) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"The executor listens on loopback only, not on {host!r}.")
        self.host = host
        self.limits = limits
        self.pool_size = pool_size
        self.workspace_root = workspace_root
        self._socket = socket.socket(
            socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM
        )
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.port: int = self._socket.getsockname()[1]
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """Base URL to give the SDK as `sandbox_url`."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> ExecutorServer:
        """Start serving; returns once the server accepts connections."""
        self._thread = threading.Thread(target=self._serve, name="e2b-executor", daemon=True)
        self._thread.start()
        if not self._ready.wait(30) or self._error is not None:
            raise RuntimeError(f"The executor did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(30)
        self._socket.close()

    def __enter__(self) -> ExecutorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        sandbox = LocalSandbox(pool_size=self.pool_size, workspace_root=self.workspace_root)
        if self.pool_size:
            await sandbox.start_pool()
        app = create_app(sandbox, self.limits)
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        serving = asyncio.ensure_future(self._server.serve(sockets=[self._socket]))
        while not self._server.started and not serving.done():
            await asyncio.sleep(0.01)
        self._ready.set()
        try:
            await serving
        finally:
            await sandbox.aclose()


def main(argv: list[str] | None = None) -> None:
    """Serve the executor in the foreground: `python -m tools.sandbox.executor --port 49999`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=49999)
    parser.add_argument("--pool-size", type=int, default=0)
    args = parser.parse_args(argv)
    server = ExecutorServer(host=args.host, port=args.port, pool_size=args.pool_size)
    server.start()
    print(f"executor listening on {server.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
