"""The script `run_candidates` runs inside the sandbox: K candidates, one process run.

It is a real module (linted, type-checked, its pure helpers unit-tested on the host) whose source
text the tool ships into the sandbox, so it must stay standard-library only and run on the
sandbox's `python3` (3.11). Why it is built this way:

- **One sandbox run, one child per candidate.** The parent forks a child for each candidate, so a
  candidate that patches builtins, exits, recurses the interpreter to death or loops inside C
  code costs only its own results; the parent never imports candidate code.
- **Bounded time.** Each call runs under an alarm (`per_call_s`); each candidate gets a fair share
  of what is left of the run's deadline, and the parent kills a child that overstays it.
- **Comparable outputs.** An output is a canonical text: equal values give equal text (sets and
  dicts sorted, floats rounded to 12 digits, object addresses masked) and an exception is an
  output too (`raise TypeName: message`). Long texts are clipped with a digest of the whole text,
  so clipping never makes two different outputs look equal.
- **Bounded report.** The parent prints one marker line per candidate, fitted to a byte share so
  the sandbox never truncates the report.

Config (`CONFIG`): module, per_call_s, deadline_s, max_text, share_bytes, checks ([call,
expected] pairs), inputs (call texts), dirs (one workspace directory per candidate).
"""

from __future__ import annotations

import builtins
import hashlib
import json
import linecache
import math
import os
import re
import select
import signal
import sys
import time
import traceback
import types
from typing import TypedDict

MARKER = "@@STRATEGOS-CANDIDATE@@"
CONFIG = "__strategos_candidates__.json"
TIMED_OUT = "raise TimeoutError: timed out"
ERROR_CHARS = 1500
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_MAX_DEPTH = 60
_SIMPLE = frozenset({int, str, bool, type(None), bytes})
_CONTAINERS = frozenset({list, tuple, set, frozenset, dict})


class _Config(TypedDict):
    """`CONFIG` as `tools.builtin.run_candidates` writes it."""

    module: str
    per_call_s: float
    deadline_s: float
    max_text: int
    share_bytes: int
    checks: list[list[str]]
    """[call, expected] pairs."""
    inputs: list[str]
    dirs: list[str]


class _CheckReport(TypedDict):
    """One spec check of one candidate, as the host reads it."""

    passed: bool
    actual: str
    error: str


class _Report(TypedDict, total=False):
    """One candidate's marker line: why it did not load, or its checks and outputs."""

    load_error: str
    checks: list[_CheckReport]
    outputs: list[str]


_Line = dict[str, object]
"""One JSON line a child sent its parent (`_Child.send`)."""


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, plus a digest of the whole so distinct texts stay so."""
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "backslashreplace")).hexdigest()[:8]
    return text[: max(limit, 0)] + "...<" + digest + ">"


def _float_text(value: float) -> str:
    if value == 0:
        return "0.0"
    if math.isnan(value) or math.isinf(value):
        return repr(value)
    return repr(float(format(value, ".12g")))


def canonical(value: object, path: frozenset[int] = frozenset()) -> str:
    """A repr under which equal values of the common builtin types have the same text."""
    if type(value) is float:
        return _float_text(value)
    if type(value) not in _CONTAINERS:
        return _ADDRESS.sub(" at 0x...", repr(value))
    if id(value) in path or len(path) > _MAX_DEPTH:
        return "..."
    return _container(value, path | {id(value)})


def _container(value: object, path: frozenset[int]) -> str:
    """`canonical` of a builtin container (`path`: the containers being printed, for cycles)."""
    if isinstance(value, dict):
        items = (canonical(k, path) + ": " + canonical(v, path) for k, v in value.items())
        return "{" + ", ".join(sorted(items)) + "}"
    assert isinstance(value, list | tuple | set | frozenset)
    if type(value) in (list, tuple) and all(type(item) in _SIMPLE for item in value):
        return repr(value)  # the common case, at C speed: these reprs are canonical already
    parts = [canonical(item, path) for item in value]
    if isinstance(value, list):
        return "[" + ", ".join(parts) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
    body = ", ".join(sorted(parts))
    if isinstance(value, set):
        return "{" + body + "}" if parts else "set()"
    return "frozenset({" + body + "})" if parts else "frozenset()"


def raised(exc: BaseException, limit: int) -> str:
    """An exception as an output: `raise TypeName: message` (addresses masked)."""
    message = _ADDRESS.sub(" at 0x...", str(exc))
    return clip(f"raise {type(exc).__name__}: {message}".rstrip(": ").rstrip(), limit)


def same(actual: object, expected: object) -> bool:
    """The comparison of `tools.checks`' runner: floats close, lists and tuples alike."""
    if isinstance(expected, float) or isinstance(actual, float):
        try:
            return math.isclose(actual, expected, rel_tol=1e-6, abs_tol=1e-9)  # type: ignore[arg-type]
        except TypeError:
            return False
    if isinstance(expected, (list, tuple)) and isinstance(actual, (list, tuple)):
        return len(actual) == len(expected) and all(map(same, actual, expected))
    return bool(actual == expected)


def fit(report: _Report, share_bytes: int) -> str:
    """The report as one JSON line of at most `share_bytes` (texts clipped harder as needed)."""
    line = json.dumps(report)
    limit = 4096
    while len(line) > share_bytes and limit >= 16:
        limit //= 2
        smaller: _Report = {**report, "load_error": clip(report.get("load_error", ""), limit * 4)}
        smaller["checks"] = [
            {**c, "actual": clip(c["actual"], limit), "error": clip(c["error"], limit * 2)}
            for c in report.get("checks", [])
        ]
        smaller["outputs"] = [clip(o, limit) for o in report.get("outputs", [])]
        line = json.dumps(smaller)
    return line


class _Child:
    """Everything that happens in one candidate's forked process."""

    def __init__(self, config: _Config, out_fd: int) -> None:
        self.config = config
        self.expected: list[object] = []
        self.out_fd = out_fd
        self.limit = int(config["max_text"])
        self.deadline = 0.0
        self.files: set[str] = set()

    def send(self, item: _Line) -> None:
        """One JSON line to the parent, at once: what was sent survives a later kill."""
        data = (json.dumps(item) + "\n").encode()
        while data:
            data = data[os.write(self.out_fd, data) :]

    def arm(self) -> bool:
        """Set the alarm for the next call; False when the candidate's time is used up."""
        left = self.deadline - time.monotonic()
        if left <= 0.01:
            return False
        signal.setitimer(signal.ITIMER_REAL, min(float(self.config["per_call_s"]), left))
        return True

    def trace(self, exc: BaseException, frames_only: bool = False) -> str:
        """The traceback through the candidate's own files only, then the exception.

        With `frames_only`, '' when no frame is the candidate's (the call's own line says it).
        """
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename in self.files]
        if frames_only and not frames:
            return ""
        head = "Traceback (most recent call last):\n" + "".join(traceback.format_list(frames))
        tail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return ((head if frames else "") + tail)[-ERROR_CHARS:]

    def load(self, directory: str) -> dict[str, object] | None:
        """Import the candidate's module as a real module (None when it has no such file).

        Its source is registered with `linecache` so tracebacks show the candidate's lines.
        """
        module_path = str(self.config["module"])
        os.chdir(directory)
        sys.path.insert(0, os.getcwd())
        for root, _dirs, names in os.walk("."):
            for name in names:
                relative = os.path.normpath(os.path.join(root, name))
                self.files.update((relative, os.path.join(os.getcwd(), relative)))
        try:
            with open(module_path, encoding="utf-8") as handle:
                source = handle.read()
        except OSError:
            return None
        linecache.cache[module_path] = (len(source), None, source.splitlines(True), module_path)
        name = module_path[:-3].replace("/", ".") if module_path.endswith(".py") else "solution"
        module = types.ModuleType(name)
        module.__file__ = module_path
        sys.modules[name] = module
        if not self.arm():
            raise TimeoutError("timed out")
        try:
            # dont_inherit: this file's `from __future__ import annotations` is not the code's.
            exec(compile(source, module_path, "exec", dont_inherit=True), module.__dict__)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        return module.__dict__

    def call(self, text: str, namespace: dict[str, object]) -> tuple[bool, object, str]:
        """(returned, value or exception, canonical output) of one call under the alarm."""
        if not self.arm():
            return False, TimeoutError("timed out"), TIMED_OUT
        try:
            value = eval(text, dict(namespace))
            output = clip(canonical(value), self.limit)
        except BaseException as exc:  # an exception is an output, whatever it is
            signal.setitimer(signal.ITIMER_REAL, 0)
            return False, exc, raised(exc, self.limit)
        signal.setitimer(signal.ITIMER_REAL, 0)
        return True, value, output

    def compare(self, actual: object, expected: object) -> bool:
        """`same` under the alarm: a returned object's own `__eq__` may raise or never end."""
        if not self.arm():
            return False
        try:
            return same(actual, expected)
        except BaseException:
            return False
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)

    def check(self, index: int, namespace: dict[str, object], detailed: bool) -> bool:
        """Run spec check `index`; only a `detailed` failure carries the traceback (the first)."""
        call, expected_text = self.config["checks"][index]
        returned, value, output = self.call(call, namespace)
        expected = self.expected[index]
        valid = not isinstance(expected, _Invalid)
        passed = returned and valid and self.compare(value, expected)
        if passed:
            error = ""
        elif isinstance(expected, _Invalid):
            error = f"the expected value {expected_text} could not be evaluated: {expected}"
        elif returned:
            error = f"{call} returned {output}, expected {clip(canonical(expected), self.limit)}"
        elif output == TIMED_OUT:
            error = f"{call} timed out (an infinite loop or very slow code?)"
        else:
            error = f"{call} raised {output.removeprefix('raise ')}"
            failed = value if isinstance(value, BaseException) else None  # it raised
            if detailed and failed and (trace := self.trace(failed, frames_only=True)):
                error += "\n" + trace
        self.send({"check": index, "passed": passed, "actual": output, "error": error})
        return passed

    def run(self, directory: str, deadline: float) -> None:
        """Load, then every check, then every input, each reported as soon as it is known."""
        self.deadline = deadline
        self.expected = _expected_values(self.config["checks"], float(self.config["per_call_s"]))
        try:
            namespace = self.load(directory)
        except BaseException as exc:
            timed_out = isinstance(exc, TimeoutError) and str(exc) == "timed out"
            text = "loading timed out (an infinite loop at import?)" if timed_out else ""
            self.send({"load_error": text or self.trace(exc)})
            return
        if namespace is None:
            self.send({"load_error": f"the candidate has no {self.config['module']}"})
            return
        self.send({"loaded": True})
        detailed = True
        for index in range(len(self.config["checks"])):
            if not self.check(index, namespace, detailed):
                detailed = False
        for index, text in enumerate(self.config["inputs"]):
            self.send({"input": index, "output": self.call(text, namespace)[2]})


class _Invalid(str):
    """An expected value that could not be evaluated (its error text)."""


def _expected_values(checks: list[list[str]], per_call_s: float) -> list[object]:
    """The expected values, under the alarm, before any candidate code is loaded.

    Each child evaluates them itself: an expression the alarm cannot stop (a huge power runs in
    C) then costs that child its time, never the parent.
    """
    values: list[object] = []
    for _call, expected in checks:
        signal.setitimer(signal.ITIMER_REAL, per_call_s)
        try:
            values.append(eval(expected, {"__builtins__": builtins}))
        except BaseException as exc:
            values.append(_Invalid(f"{type(exc).__name__}: {exc}"))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    return values


def _alarm(signum: int, frame: object) -> None:
    raise TimeoutError("timed out")


def _silence() -> None:
    """Point the child's stdout and stderr at /dev/null: candidate prints never reach the report."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.close(null)


def _collect(read_fd: int, pid: int, kill_at: float) -> tuple[list[_Line], str]:
    """The child's lines and how it ended: 'timeout', 'signal N' or 'exit code N'."""
    chunks: list[bytes] = []
    killed = False
    while True:
        left = kill_at - time.monotonic()
        ready = select.select([read_fd], [], [], max(left, 0))[0] if left > 0 else []
        if not ready:
            os.kill(pid, signal.SIGKILL)
            killed = True
            break
        data = os.read(read_fd, 65536)
        if not data:
            break
        chunks.append(data)
    os.close(read_fd)
    _pid, status = os.waitpid(pid, 0)
    lines: list[_Line] = []
    for raw in b"".join(chunks).decode(errors="replace").splitlines():
        try:
            item = json.loads(raw)
        except ValueError:  # a line cut off by the kill
            continue
        if isinstance(item, dict):
            lines.append(item)
    if killed:
        return lines, "timeout"
    if os.WIFSIGNALED(status):
        return lines, f"signal {os.WTERMSIG(status)}"
    return lines, f"exit code {os.waitstatus_to_exitcode(status)}"


def _report(lines: list[_Line], ended: str, config: _Config) -> _Report:
    """Assemble a candidate's report; calls it never reported get an output saying why.

    The lines are the child's own (`_Child.send`), so their values have the types it sent;
    `str`/`bool` only say so to the type checker.
    """
    load_errors = [str(line["load_error"]) for line in lines if "load_error" in line]
    if load_errors or not any("loaded" in line for line in lines):
        how = "timed out" if ended == "timeout" else f"the process ended ({ended})"
        error = load_errors[0] if load_errors else f"loading failed: {how}"
        return {"load_error": error, "checks": [], "outputs": []}
    checks = {line["check"]: line for line in lines if "check" in line}
    outputs = {line["input"]: str(line["output"]) for line in lines if "input" in line}
    lost = TIMED_OUT if ended == "timeout" else f"raise SystemExit: the process ended ({ended})"
    reported: list[_CheckReport] = []
    for index, (call, _expected) in enumerate(config["checks"]):
        line = checks.get(index) or {"passed": False, "actual": lost, "error": f"{call}: {lost}"}
        reported.append(
            {
                "passed": bool(line["passed"]),
                "actual": str(line["actual"]),
                "error": str(line["error"]),
            }
        )
    return {
        "load_error": "",
        "checks": reported,
        "outputs": [outputs.get(i, lost) for i in range(len(config["inputs"]))],
    }


def _run_one(config: _Config, directory: str, deadline: float) -> str:
    """Fork a child for one candidate and return its fitted report line."""
    read_fd, write_fd = os.pipe()
    try:
        pid = os.fork()
    except OSError as exc:
        os.close(read_fd)
        os.close(write_fd)
        return fit({"load_error": f"could not start the candidate: {exc}"}, config["share_bytes"])
    if pid == 0:  # the child: never returns
        os.close(read_fd)
        code = 0
        try:
            _silence()
            _Child(config, write_fd).run(directory, deadline)
        except BaseException:
            code = 1
        os._exit(code)
    os.close(write_fd)
    lines, ended = _collect(read_fd, pid, deadline + 0.5)
    return fit(_report(lines, ended, config), int(config["share_bytes"]))


def main() -> None:
    """Run every candidate and print one marker line per candidate, in order."""
    start = time.monotonic()
    with open(CONFIG, encoding="utf-8") as handle:
        config: _Config = json.load(handle)
    signal.signal(signal.SIGALRM, _alarm)
    deadline = start + float(config["deadline_s"])
    base = os.getcwd()
    dirs: list[str] = config["dirs"]
    for index, directory in enumerate(dirs):
        share = (deadline - time.monotonic()) / (len(dirs) - index)
        line = _run_one(config, os.path.join(base, directory), time.monotonic() + share)
        sys.stdout.write(f"\n{MARKER}{index} {line}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
