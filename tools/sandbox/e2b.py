"""E2B sandbox: runs commands in an E2B cloud micro-VM through the real `e2b-code-interpreter` SDK.

Each `run` creates a sandbox (`AsyncSandbox.create`, internet access off), executes one
generated Python cell with `run_code`, and kills the sandbox. The cell writes the files into a
fresh directory, runs the command there with rlimits in a new session, keeps at most
`max_output_bytes` of each stream, kills the whole session at the wall-clock limit, prints the
captured output (it arrives as the execution's stdout/stderr) and ends with an expression
whose value is the outcome (exit code, timeout, truncation, collected files) — the execution's
main result. So the backend needs nothing but the code-interpreter's `/execute` endpoint.

Production: `E2BSandbox()` with `E2B_API_KEY` in the environment (the SDK reads it) or
`api_key=`. Tests: `E2BSandbox(debug=True, sandbox_url=ExecutorServer().url)`; debug mode makes
the SDK skip the control plane and send `/execute` to that URL (see `executor.py`).
"""

from __future__ import annotations

import ast
import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any

from e2b_code_interpreter import AsyncSandbox  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, ValidationError

from tools.sandbox.base import (
    PythonEntry,
    SandboxError,
    SandboxLimits,
    SandboxResult,
    SandboxUnavailable,
    limits_hit,
    validate_command,
    validate_workspace_path,
)
from tools.telemetry import SANDBOX_SECONDS, traced

__all__ = ["E2BSandbox", "build_cell"]

_MIB = 1024 * 1024
# Extra time the SDK request gets beyond the command's own wall-clock limit.
_REQUEST_GRACE_S = 30.0
# Largest main result accepted from the cell (output is capped separately, files at 4 MiB each).
_MAX_RESULT_CHARS = 64 * _MIB
_COLLECT_MAX_BYTES = 4 * _MIB

# The cell's body. It only uses the standard library and keeps its names inside a function, so
# the code-interpreter kernel's namespace is left as it was.
_CELL = r"""
def _strategos_run(spec):
    import base64, os, resource, shutil, signal, stat, subprocess, sys, tempfile, threading, time
    work = tempfile.mkdtemp(prefix="strategos-")
    try:
        for rel, data in spec["files"].items():
            path = os.path.join(work, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as handle:
                handle.write(base64.b64decode(data))
        cap = spec["max_output_bytes"]

        def limit():
            for name, value in spec["rlimits"]:
                which = getattr(resource, name)
                hard = resource.getrlimit(which)[1]
                if hard != resource.RLIM_INFINITY:
                    value = min(value, hard)  # never above what the kernel already allows
                resource.setrlimit(which, (value, value))

        env = dict(spec["env"], HOME=work)
        start = time.monotonic()
        proc = subprocess.Popen(
            spec["argv"], cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, preexec_fn=limit, start_new_session=True,
        )
        buffers = {"out": bytearray(), "err": bytearray()}
        truncated = []

        def pump(stream, key):
            buf = buffers[key]
            while True:
                chunk = os.read(stream.fileno(), 65536)
                if not chunk:
                    return
                room = cap - len(buf)
                if room > 0:
                    buf += chunk[:room]
                if len(chunk) > room:
                    truncated.append(key)

        pumps = [
            threading.Thread(target=pump, args=(proc.stdout, "out"), daemon=True),
            threading.Thread(target=pump, args=(proc.stderr, "err"), daemon=True),
        ]
        for thread in pumps:
            thread.start()
        timed_out = False
        try:
            proc.wait(timeout=spec["timeout_s"])
        except subprocess.TimeoutExpired:
            timed_out = True
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        code = proc.wait()
        for thread in pumps:
            thread.join(2)
        duration = time.monotonic() - start
        sys.stdout.write(buffers["out"].decode("utf-8", "replace"))
        sys.stdout.flush()
        sys.stderr.write(buffers["err"].decode("utf-8", "replace"))
        sys.stderr.flush()
        files = {}
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
        for rel in spec["collect"]:
            fd = os.open(work, flags | os.O_DIRECTORY)
            try:
                parts = rel.split("/")
                for part in parts[:-1]:
                    child = os.open(part, flags | os.O_DIRECTORY, dir_fd=fd)
                    os.close(fd)
                    fd = child
                leaf = os.open(parts[-1], flags | os.O_NONBLOCK, dir_fd=fd)
            except OSError:
                os.close(fd)
                continue
            os.close(fd)
            try:
                info = os.fstat(leaf)
                if stat.S_ISREG(info.st_mode) and info.st_size <= spec["collect_max_bytes"]:
                    files[rel] = os.read(leaf, info.st_size + 1).decode("utf-8", "replace")
            finally:
                os.close(leaf)
        return {
            "exit_code": code if code >= 0 else 128 - code,
            "timed_out": timed_out,
            "truncated": bool(truncated),
            "duration_s": round(duration, 3),
            "files": files,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
"""

_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
}


class _Outcome(BaseModel):
    model_config = ConfigDict(extra="ignore")

    exit_code: int
    timed_out: bool
    truncated: bool
    duration_s: float
    files: dict[str, str]


def build_cell(
    files: Mapping[str, str],
    command: Sequence[str],
    limits: SandboxLimits,
    collect: Sequence[str] = (),
) -> str:
    """The Python cell that runs `command` over `files` inside the code-interpreter kernel."""
    spec = {
        "files": {
            str(validate_workspace_path(key)): base64.b64encode(value.encode()).decode()
            for key, value in files.items()
        },
        "argv": list(command),
        "env": _ENV,
        "timeout_s": limits.timeout_s,
        "max_output_bytes": limits.max_output_bytes,
        "collect": [str(validate_workspace_path(name)) for name in collect],
        "collect_max_bytes": _COLLECT_MAX_BYTES,
        "rlimits": [
            ["RLIMIT_CPU", limits.cpu_s],
            ["RLIMIT_AS", limits.memory_mb * _MIB],
            ["RLIMIT_FSIZE", limits.file_size_mb * _MIB],
            ["RLIMIT_NOFILE", limits.open_files],
            ["RLIMIT_CORE", 0],
        ],
    }
    payload = json.dumps(spec)
    return (
        f"{_CELL}\nimport json as _strategos_json\n"
        f"_strategos_run(_strategos_json.loads({payload!r}))\n"
    )


class E2BSandbox(PythonEntry):
    """Runs commands in E2B sandboxes with the official SDK; implements `tools.sandbox.Sandbox`.

    `debug=True` + `sandbox_url` send every request to that URL and skip the control plane (the
    SDK's debug mode; used with `executor.ExecutorServer` in tests). Otherwise the SDK creates a
    real cloud sandbox from `template` with `api_key` (default: `E2B_API_KEY`).
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        template: str | None = None,
        debug: bool | None = None,
        sandbox_url: str | None = None,
        domain: str | None = None,
        request_timeout_s: float = 30.0,
        python: str = "python3",
    ) -> None:
        self.template = template
        self.python = python
        self._opts: dict[str, Any] = {"request_timeout": request_timeout_s}
        for key, value in (
            ("api_key", api_key),
            ("debug", debug),
            ("sandbox_url", sandbox_url),
            ("domain", domain),
        ):
            if value is not None:
                self._opts[key] = value

    @traced("sandbox_run", SANDBOX_SECONDS, backend="e2b")
    async def run(
        self,
        files: Mapping[str, str],
        command: Sequence[str],
        limits: SandboxLimits | None = None,
        *,
        collect: Sequence[str] = (),
    ) -> SandboxResult:
        """Create a sandbox, run `command` over `files` in it, return the result, kill it."""
        validate_command(command)
        limits = limits or SandboxLimits()
        cell = build_cell(files, command, limits, collect)
        try:
            sandbox = await AsyncSandbox.create(
                template=self.template,
                timeout=int(limits.timeout_s + _REQUEST_GRACE_S) + 60,
                allow_internet_access=False,
                **self._opts,
            )
        except Exception as exc:
            raise SandboxUnavailable(
                f"Could not create an E2B sandbox: {exc}. Set E2B_API_KEY (or pass api_key=), "
                "or use debug=True with sandbox_url= pointing at a local executor."
            ) from exc
        try:
            execution = await sandbox.run_code(
                cell,
                timeout=limits.timeout_s + _REQUEST_GRACE_S,
                request_timeout=self._opts["request_timeout"],
            )
        except Exception as exc:
            raise SandboxError(f"The E2B execution failed: {type(exc).__name__}: {exc}") from exc
        finally:
            try:
                await sandbox.kill()
            except Exception:  # noqa: BLE001 - the sandbox times out by itself anyway
                pass
        return _to_result(execution)


def _to_result(execution: Any) -> SandboxResult:
    stdout = "".join(execution.logs.stdout)
    stderr = "".join(execution.logs.stderr)
    texts = [r.text for r in execution.results if getattr(r, "is_main_result", False) and r.text]
    if execution.error is not None or not texts:
        error = execution.error
        detail = f"{error.name}: {error.value}" if error is not None else "no result"
        raise SandboxError(
            f"The E2B cell did not report an outcome ({detail}); stderr: {stderr[-500:]!r}"
        )
    text = texts[-1]
    if len(text) > _MAX_RESULT_CHARS:
        raise SandboxError("The E2B cell's outcome is too large to parse.")
    try:
        outcome = _Outcome.model_validate(ast.literal_eval(text))
    except (ValueError, SyntaxError, MemoryError, RecursionError, ValidationError) as exc:
        raise SandboxError(f"The E2B cell's outcome is not readable: {text[:200]!r}") from exc
    return SandboxResult(
        exit_code=outcome.exit_code,
        stdout=stdout,
        stderr=stderr,
        timed_out=outcome.timed_out,
        duration_s=outcome.duration_s,
        output_truncated=outcome.truncated,
        files=outcome.files,
        limits_hit=limits_hit(
            exit_code=outcome.exit_code, timed_out=outcome.timed_out, truncated=outcome.truncated
        ),
    )
