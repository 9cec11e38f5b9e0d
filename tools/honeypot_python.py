"""The honeypot's Python rules: one pass over a module's syntax tree.

Parsed with `ast`, so words inside ordinary strings, comments and docstrings do not count; the
rules themselves are listed in `tools.honeypot`'s docstring. Commands and literals found in the
code are checked with the shell and path rules of `tools.honeypot_shell`.
"""

from __future__ import annotations

import ast
import re

from tools.honeypot_shell import (
    HoneypotHit,
    always_dangerous,
    outside_workspace,
    rule_hit,
    scan_command,
    scan_path,
)

__all__ = ["scan_module"]

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
        self.hits.append(rule_hit(rule, ast.unparse(node)[:160], self.where))

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
        if (text is not None and outside_workspace(text)) or self.is_home(target):
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
                self.hits += always_dangerous(node.value, self.where)
            elif isinstance(node, ast.Expr) and self.is_whole_env(node.value):
                self.add("py-env-dump", node)
        return self.hits


def _unbounded(loop: ast.While) -> bool:
    """`while True:` (or another truthy constant) without a `break` in its own body."""
    test = loop.test
    if not (isinstance(test, ast.Constant) and bool(test.value)):
        return False
    return not any(isinstance(n, ast.Break) for n in ast.walk(loop))


def scan_module(tree: ast.Module, where: str) -> list[HoneypotHit]:
    """Every Python rule's hits in a parsed module (possibly repeated; the caller dedupes)."""
    return _Analyzer(tree, where).run()
