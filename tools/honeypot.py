"""Honeypot: recognise dangerous requests in tool arguments so the gateway never runs them.

A caught call is not executed. The gateway answers the agent with a plausible simulated success
(the tool's `simulate`), appends a `HoneypotTriggered` event and flags the task for a human.
This is a tripwire, not the containment: the sandbox still isolates whatever is not caught
(obfuscated code, `exec` of decoded strings …).

Detection is explicit and rule-based; every rule has an id in `RULES`:

Python code (parsed with `ast`, so words inside ordinary strings, comments and docstrings do
not count):
- `py-delete-outside`: `shutil.rmtree`, `os.remove/unlink/rmdir/removedirs`, `Path(...).unlink`
  / `.rmdir` on a literal absolute path outside `/workspace` and `/tmp`, a `~` or `..` path, or
  the home directory (`Path.home()`, `expanduser`).
- `py-env-dump`: the whole `os.environ` (or a secret-named variable such as `OPENAI_API_KEY`,
  also through an assignment or a loop over the environment) reaching an output: `print`,
  `json.dumps`, a `write`/`send`/log call, directly or inside an f-string or `str(...)`.
- `py-fork-bomb`: `os.fork`/`os.forkpty` in a `while` loop; any process spawn
  (`multiprocessing.Process`, `subprocess.Popen`, `os.spawn*`) in a `while True` loop that has
  no `break`.
- `py-kill-host`: `os.kill`/`os.killpg` of pid 1 or -1.
- every string literal that is not a docstring is checked against the always-dangerous shell
  rules (`rm -rf /`, fork bomb, `mkfs`, `dd of=/dev/…`) and, when it has no whitespace (a
  path, not a sentence), against the credential paths below;
- every command given to `os.system`, `os.popen`, `os.exec*`, `os.spawn*`, `subprocess.*`,
  `pty.spawn`, `asyncio.create_subprocess_*` is checked against all shell rules.

Shell commands:
- `sh-rm-outside`: `rm` of `/`, `/*`, `~`, `$HOME`, `..` or an absolute path outside
  `/workspace` and `/tmp`; `sh-rm-root`: `rm -r…` of `/`, `/*` or `~` (checked everywhere).
- `sh-find-delete`: `find <outside path> … -delete`.
- `sh-shutdown`: shutdown, reboot, halt, poweroff, `init 0|6`, `systemctl poweroff|reboot|halt`.
- `sh-kill-all`: `kill … -1` or `kill … 1`, `killall`, `pkill -9`.
- `sh-env-dump`: `env` or `printenv` or `set` on its own, `export -p`.
- `sh-fork-bomb`: `:(){ :|:& };:` and renamed variants.
- `sh-disk-wipe`: `mkfs*`, `dd … of=/dev/…`, `shred … /dev/…`, `> /dev/sd…`.

Paths (file tool arguments, literals in code, commands):
- `path-credentials`: `/etc/shadow`, `/etc/gshadow`, `/etc/sudoers`, `/etc/passwd`,
  `/etc/master.passwd`, `.ssh`, `id_rsa` and other key names, `.aws/credentials`, `.aws`,
  `.gnupg`, `.netrc`, `.pgpass`, `.git-credentials`, `.docker/config.json`, `.kube/config`,
  `/proc/<pid>/environ`, `/run/secrets`, `/var/run/secrets`.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from tools.checks import parse_quietly
from tools.registry import CODE_FORMAT, PATH_FORMAT, ToolSpec

__all__ = [
    "Category",
    "HoneypotHit",
    "RULES",
    "scan_call",
    "scan_code",
    "scan_command",
    "scan_path",
]

Category = Literal[
    "delete_outside_workspace",
    "credential_read",
    "env_dump",
    "shutdown",
    "process_kill",
    "fork_bomb",
    "disk_wipe",
]


@dataclass(frozen=True)
class HoneypotHit:
    """One rule that matched, with the evidence (truncated) and where it was found."""

    rule: str
    category: Category
    evidence: str
    where: str

    def describe(self) -> str:
        """One line for the report and the event log."""
        return f"{self.rule} ({self.category}) in {self.where}: {self.evidence}"


RULES: dict[str, tuple[Category, str]] = {
    "py-delete-outside": (
        "delete_outside_workspace",
        "Python deletes a path outside the workspace",
    ),
    "py-env-dump": ("env_dump", "Python sends the environment or a secret variable to output"),
    "py-fork-bomb": ("fork_bomb", "Python forks or spawns processes in an unbounded loop"),
    "py-kill-host": ("process_kill", "Python signals pid 1 or every process"),
    "sh-rm-root": ("delete_outside_workspace", "rm -r of /, /* or the home directory"),
    "sh-rm-outside": ("delete_outside_workspace", "rm of a path outside the workspace"),
    "sh-find-delete": ("delete_outside_workspace", "find … -delete outside the workspace"),
    "sh-shutdown": ("shutdown", "shutdown, reboot, halt or poweroff"),
    "sh-kill-all": ("process_kill", "kill of pid 1 / every process, killall, pkill -9"),
    "sh-env-dump": ("env_dump", "env, printenv, set or export -p dump the environment"),
    "sh-fork-bomb": ("fork_bomb", "the shell fork bomb"),
    "sh-disk-wipe": ("disk_wipe", "mkfs, dd/shred onto a device"),
    "path-credentials": ("credential_read", "a credential or secret file"),
}

# ---------------------------------------------------------------------------------------------
# Paths and shell commands

_CREDENTIAL_PATH = re.compile(
    r"""(?ix)
    (?:^|[\s'"=:/])(?:
        /etc/(?:shadow|gshadow|sudoers|passwd|master\.passwd|security/opasswd)\b
      | /proc/(?:self|\d+|\*|thread-self)/environ\b
      | /(?:var/)?run/secrets\b
    )
    | (?:^|[\s'"=:/~])\.(?:ssh|gnupg|aws)(?:/|$|['"\s])
    | (?:^|[\s'"=:/])(?:id_rsa|id_dsa|id_ecdsa|id_ed25519)(?:\.pub)?(?:$|['"\s])
    | (?:^|[\s'"=:/~])\.(?:netrc|pgpass|git-credentials)(?:$|['"\s])
    | \.aws/credentials | \.docker/config\.json | \.kube/config\b
    """
)
_SAFE_ROOTS = ("/workspace", "/tmp")
# A command word starts a line or follows a separator, a quote or a bracket.
_START = r"""(?:^|[;&|`(\s"'])"""
_RM = re.compile(_START + r"(?:sudo\s+)?rm\s+(?P<args>[^;&|`)\n]*)")
_FIND_DELETE = re.compile(_START + r"find\s+(?P<root>\S+)[^;&|`\n]*\s-delete\b")
_SHUTDOWN = re.compile(
    _START
    + r"(?:sudo\s+)?(?:shutdown|reboot|halt|poweroff|init\s+[06]\b|telinit\s+[06]\b"
    + r"|systemctl\s+(?:poweroff|reboot|halt|kexec)\b)"
)
_KILL_ALL = re.compile(
    _START + r"(?:sudo\s+)?(?:kill\s+(?:-\w+\s+)*-?1(?:\s|$)|killall\b|pkill\s+-(?:9|KILL)\b)"
)
_ENV_DUMP = re.compile(r"^\s*(?:env|printenv|set|export\s+-p)\s*(?:$|[|>;&])")
_FORK_BOMB = re.compile(r"(?P<f>[\w:.]+)\s*\(\)\s*\{\s*(?P=f)\s*\|\s*(?P=f)\s*&\s*\}\s*;\s*(?P=f)")
_DISK_WIPE = re.compile(
    _START
    + r"(?:mkfs(?:\.\w+)?\s|dd\s[^;&|\n]*\bof=/dev/|shred\s[^;&|\n]*/dev/)"
    + r"|>\s*/dev/(?:sd|nvme|hd|vd|xvd)[a-z0-9]*"
)


def _outside(target: str) -> bool:
    """Whether a literal path points outside the sandbox workspace (or at its root)."""
    target = target.strip("'\"")
    if not target:
        return False
    if target.startswith(("~", "$HOME", "${HOME}")):
        return True
    if target.startswith(".."):
        return True
    if target.startswith("/"):
        normal = re.sub(r"/+", "/", target).rstrip("/") or "/"
        if "/../" in normal + "/":
            return True
        return not any(normal.startswith(root + "/") for root in _SAFE_ROOTS)
    return False


def _hit(rule: str, evidence: str, where: str) -> HoneypotHit:
    text = evidence.strip().replace("\n", " ")
    return HoneypotHit(rule, RULES[rule][0], text[:160], where)


def scan_path(path: str, where: str = "path") -> list[HoneypotHit]:
    """Credential files named by a path (a tool argument or a literal in code)."""
    match = _CREDENTIAL_PATH.search(path)
    return [_hit("path-credentials", path, where)] if match else []


def _rm_hits(command: str, where: str, *, root_only: bool) -> Iterator[HoneypotHit]:
    for match in _RM.finditer(command):
        words = match.group("args").split()
        flags = "".join(w.lstrip("-") for w in words if w.startswith("-"))
        targets = [w for w in words if not w.startswith("-")]
        recursive = "r" in flags.lower() or "recursive" in flags
        for target in targets:
            clean = target.strip("'\"")
            if root_only:
                if recursive and clean in ("/", "/*", "~", "~/", "~/*", "$HOME", "${HOME}"):
                    yield _hit("sh-rm-root", match.group(0), where)
                    return
            elif _outside(clean):
                yield _hit("sh-rm-outside", match.group(0), where)
                return


def _always_dangerous(text: str, where: str) -> list[HoneypotHit]:
    """Rules specific enough to apply to any string, not only to commands."""
    hits = list(_rm_hits(text, where, root_only=True))
    if match := _FORK_BOMB.search(text):
        hits.append(_hit("sh-fork-bomb", match.group(0), where))
    if match := _DISK_WIPE.search(text):
        hits.append(_hit("sh-disk-wipe", match.group(0), where))
    return hits


def scan_command(command: str, where: str = "command") -> list[HoneypotHit]:
    """Every shell rule, for text that is executed as a command."""
    hits = _always_dangerous(command, where)
    if not any(h.rule == "sh-rm-root" for h in hits):
        hits += _rm_hits(command, where, root_only=False)
    if (match := _FIND_DELETE.search(command)) and _outside(match.group("root")):
        hits.append(_hit("sh-find-delete", match.group(0), where))
    if match := _SHUTDOWN.search(command):
        hits.append(_hit("sh-shutdown", match.group(0), where))
    if match := _KILL_ALL.search(command):
        hits.append(_hit("sh-kill-all", match.group(0), where))
    if any(_ENV_DUMP.search(part) for part in re.split(r"[;&|]+", command)):
        hits.append(_hit("sh-env-dump", command, where))
    hits += scan_path(command, where)
    return hits


# ---------------------------------------------------------------------------------------------
# Python code

_EXEC_FUNCS = {
    "os.system",
    "os.popen",
    "os.execl",
    "os.execle",
    "os.execlp",
    "os.execlpe",
    "os.execv",
    "os.execve",
    "os.execvp",
    "os.execvpe",
    "os.spawnl",
    "os.spawnle",
    "os.spawnlp",
    "os.spawnlpe",
    "os.spawnv",
    "os.spawnve",
    "os.spawnvp",
    "os.spawnvpe",
    "os.posix_spawn",
    "os.posix_spawnp",
    "subprocess.run",
    "subprocess.call",
    "subprocess.check_call",
    "subprocess.check_output",
    "subprocess.Popen",
    "subprocess.getoutput",
    "subprocess.getstatusoutput",
    "pty.spawn",
    "asyncio.create_subprocess_shell",
    "asyncio.create_subprocess_exec",
}
_SPAWN_FUNCS = {
    "os.fork",
    "os.forkpty",
    "multiprocessing.Process",
    "subprocess.Popen",
    "os.spawnl",
    "os.spawnlp",
    "os.spawnv",
    "os.spawnvp",
    "os.posix_spawn",
    "os.posix_spawnp",
}
_DELETE_FUNCS = {
    "shutil.rmtree",
    "os.remove",
    "os.unlink",
    "os.rmdir",
    "os.removedirs",
}
_SINKS = {
    "print",
    "str",
    "repr",
    "format",
    "json.dumps",
    "json.dump",
    "pprint.pprint",
    "pprint.pformat",
    "sys.stdout.write",
    "sys.stderr.write",
    "logging.info",
    "logging.debug",
    "logging.warning",
    "logging.error",
}
_SINK_METHODS = {
    "write",
    "writelines",
    "send",
    "sendall",
    "sendto",
    "post",
    "put",
    "info",
    "debug",
    "warning",
    "error",
    "critical",
    "exception",
    "log",
}
_SECRET_NAME = re.compile(r"(?i)secret|token|passw(?:or)?d|api_?key|access_?key|private_?key|cred")
_WHOLE_ENV_METHODS = {"items", "keys", "values", "copy", "__repr__", "__str__"}
_TRANSPARENT = {"str", "repr", "format", "dict", "list", "tuple", "sorted", "json.dumps"}
_TRANSPARENT_METHODS = {"join", "format", "items", "values", "copy", "encode", "decode", "strip"}


def _docstring_ids(tree: ast.AST) -> set[int]:
    """Ids of string constants that are docstrings or bare string statements."""
    ids: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list):
            for stmt in body:
                if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                    ids.add(id(stmt.value))
    return ids


class _Analyzer:
    """One pass over a module: resolves imports and applies the Python rules."""

    def __init__(self, tree: ast.Module, where: str) -> None:
        self.tree = tree
        self.where = where
        self.aliases: dict[str, str] = {}
        self.strings: dict[str, str] = {}
        self.tainted: set[str] = set()
        self.hits: list[HoneypotHit] = []
        self.docstrings = _docstring_ids(tree)
        self.parents: dict[int, ast.AST] = {}
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                self.parents[id(child)] = node

    # -- name resolution ------------------------------------------------------------------
    def collect(self) -> None:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    local = alias.asname or alias.name.split(".")[0]
                    self.aliases[local] = alias.name if alias.asname else local
            elif isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
                if isinstance(target, ast.Name):
                    text = self.literal(node.value)
                    if text is not None:
                        self.strings[target.id] = text
        # Second pass, so that taint sees aliases defined anywhere.
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Assign) and self.is_secret_source(node.value):
                for target in node.targets:
                    self.tainted.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
            elif isinstance(node, ast.For | ast.comprehension) and self.is_whole_env(node.iter):
                target = node.target
                self.tainted.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))

    def qualname(self, node: ast.AST) -> str | None:
        """Dotted name of a Name/Attribute chain with import aliases resolved."""
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id, node.id)
        if isinstance(node, ast.Attribute):
            base = self.qualname(node.value)
            return f"{base}.{node.attr}" if base else None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == "__import__" and node.args:
                return self.literal(node.args[0])
        if isinstance(node, ast.Call) and self.qualname(node.func) == "importlib.import_module":
            return self.literal(node.args[0]) if node.args else None
        return None

    def literal(self, node: ast.AST) -> str | None:
        """A string value when it is known statically (constants, f-strings, lists, names)."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.JoinedStr):
            parts: list[str] = []
            for value in node.values:
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    parts.append(value.value)
                elif isinstance(value, ast.FormattedValue):
                    parts.append(self.literal(value.value) or "X")
            return "".join(parts)
        if isinstance(node, ast.List | ast.Tuple):
            items = [self.literal(elt) for elt in node.elts]
            known = [p for p in items if p is not None]
            return " ".join(known) if known else None
        if isinstance(node, ast.Name):
            return self.strings.get(node.id)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = self.literal(node.left), self.literal(node.right)
            if left is not None or right is not None:
                return (left or "X") + (right or "X")
        return None

    # -- sources ----------------------------------------------------------------------------
    def is_environ(self, node: ast.AST) -> bool:
        return self.qualname(node) == "os.environ"

    def is_whole_env(self, node: ast.AST) -> bool:
        """`os.environ`, `os.environ.items()` … or `dict(os.environ)`."""
        if self.is_environ(node):
            return True
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in _WHOLE_ENV_METHODS:
                return self.is_environ(func.value)
            if self.qualname(func) in ("dict", "list", "sorted", "str", "repr") and node.args:
                return self.is_whole_env(node.args[0])
        if isinstance(node, ast.Call) and self.qualname(node.func) == "open" and node.args:
            text = self.literal(node.args[0]) or ""
            return bool(re.search(r"/proc/[^/]+/environ", text))
        return False

    def is_secret_source(self, node: ast.AST) -> bool:
        """The whole environment, or one variable whose name looks secret."""
        if self.is_whole_env(node):
            return True
        key: ast.AST | None = None
        if isinstance(node, ast.Subscript) and self.is_environ(node.value):
            key = node.slice
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            if self.qualname(func) == "os.getenv":
                key = node.args[0]
            elif isinstance(func, ast.Attribute) and func.attr == "get":
                if self.is_environ(func.value):
                    key = node.args[0]
        if key is None:
            return False
        name = self.literal(key)
        return bool(name and _SECRET_NAME.search(name))

    def has_secret(self, node: ast.AST) -> bool:
        """Whether a secret reaches `node`'s value through value-preserving operations.

        String building, containers, `str`/`dict`/`json.dumps` … pass a secret on; any other
        call (`len(os.environ)`, `bool(token)`) does not, and neither does a comparison.
        """
        if isinstance(node, ast.Name):
            return node.id in self.tainted
        if isinstance(node, ast.expr) and self.is_secret_source(node):
            return True
        if isinstance(node, ast.Call):
            name = self.qualname(node.func)
            method = node.func.attr if isinstance(node.func, ast.Attribute) else ""
            if name in _TRANSPARENT or method in _TRANSPARENT_METHODS:
                parts = [*node.args, *(k.value for k in node.keywords)]
                if isinstance(node.func, ast.Attribute):
                    parts.append(node.func.value)
                return any(self.has_secret(part) for part in parts)
            return False
        if isinstance(node, ast.Compare | ast.BoolOp | ast.Lambda):
            return False
        return any(self.has_secret(child) for child in ast.iter_child_nodes(node))

    # -- rules ------------------------------------------------------------------------------
    def add(self, rule: str, node: ast.AST) -> None:
        self.hits.append(_hit(rule, ast.unparse(node)[:160], self.where))

    def in_loop(self, node: ast.AST) -> ast.While | ast.For | None:
        parent = self.parents.get(id(node))
        while parent is not None:
            if isinstance(parent, ast.While | ast.For):
                return parent
            if isinstance(parent, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                return None
            parent = self.parents.get(id(parent))
        return None

    def check_call(self, node: ast.Call) -> None:
        name = self.qualname(node.func)
        if name in _EXEC_FUNCS:
            args = list(node.args) + [k.value for k in node.keywords if k.arg == "args"]
            texts = [t for t in (self.literal(a) for a in args) if t]
            if texts:
                self.hits += scan_command(" ".join(texts), self.where)
        if name in _DELETE_FUNCS and node.args:
            self.check_delete(node, node.args[0])
        if isinstance(node.func, ast.Attribute) and node.func.attr in ("unlink", "rmdir"):
            target = node.func.value
            if isinstance(target, ast.Call) and self.qualname(target.func) in (
                "pathlib.Path",
                "Path",
            ):
                if target.args:
                    self.check_delete(node, target.args[0])
            elif self.is_home(target):
                self.add("py-delete-outside", node)
        if name in ("os.kill", "os.killpg") and node.args:
            pid = node.args[0]
            value = pid.value if isinstance(pid, ast.Constant) else None
            if isinstance(pid, ast.UnaryOp) and isinstance(pid.operand, ast.Constant):
                value = -1 if pid.operand.value == 1 else None
            if value in (1, -1):
                self.add("py-kill-host", node)
        if name in _SPAWN_FUNCS:
            loop = self.in_loop(node)
            forks = name in ("os.fork", "os.forkpty")
            if isinstance(loop, ast.While) and (forks or _unbounded(loop)):
                self.add("py-fork-bomb", node)
        if name in _SINKS or (
            isinstance(node.func, ast.Attribute) and node.func.attr in _SINK_METHODS
        ):
            payload = list(node.args) + [k.value for k in node.keywords]
            if any(self.has_secret(arg) for arg in payload):
                self.add("py-env-dump", node)

    def is_home(self, node: ast.AST) -> bool:
        if isinstance(node, ast.Call):
            name = self.qualname(node.func)
            if name in ("pathlib.Path.home", "Path.home"):
                return True
            if name == "os.path.expanduser":
                return True
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            return self.is_home(node.left)
        return False

    def check_delete(self, call: ast.Call, target: ast.AST) -> None:
        text = self.literal(target)
        if (text is not None and _outside(text)) or self.is_home(target):
            self.add("py-delete-outside", call)

    def run(self) -> list[HoneypotHit]:
        self.collect()
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Call):
                self.check_call(node)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                if id(node) in self.docstrings:
                    continue
                if not any(c.isspace() for c in node.value.strip()):
                    self.hits += scan_path(node.value, self.where)  # a path, not a sentence
                self.hits += _always_dangerous(node.value, self.where)
            elif isinstance(node, ast.Expr) and self.is_whole_env(node.value):
                self.add("py-env-dump", node)
        return self.hits


def _unbounded(loop: ast.While) -> bool:
    """`while True:` (or another truthy constant) without a `break` in its own body."""
    test = loop.test
    if not (isinstance(test, ast.Constant) and bool(test.value)):
        return False
    return not any(isinstance(n, ast.Break) for n in ast.walk(loop))


def _dedupe(hits: list[HoneypotHit]) -> list[HoneypotHit]:
    seen: set[tuple[str, str]] = set()
    out: list[HoneypotHit] = []
    for hit in hits:
        if (hit.rule, hit.evidence) not in seen:
            seen.add((hit.rule, hit.evidence))
            out.append(hit)
    return out


def scan_code(code: str, where: str = "code") -> list[HoneypotHit]:
    """Python rules over parsed code; unparsable code only gets the always-dangerous rules."""
    try:
        tree = parse_quietly(code)
    except (SyntaxError, ValueError):
        return _dedupe(_always_dangerous(code, where) + scan_path(code, where))
    assert isinstance(tree, ast.Module)
    return _dedupe(_Analyzer(tree, where).run())


def scan_call(spec: ToolSpec[Any, Any], args: BaseModel) -> list[HoneypotHit]:
    """Scan a validated call: code arguments as Python, path arguments as paths."""
    hits: list[HoneypotHit] = []
    for code in spec.values_with_format(args, CODE_FORMAT):
        hits += scan_code(code, where=f"{spec.name} code")
    for path in spec.values_with_format(args, PATH_FORMAT):
        hits += scan_path(path, where=f"{spec.name} path")
    return _dedupe(hits)
