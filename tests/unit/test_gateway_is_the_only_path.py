"""Import and call rules: agent code reaches tools, the sandbox and the host only via the gateway.

The team's nodes and graphs may prepare a tool call and read its result models, but they may not
import a sandbox, the ledger or a tool's handler, spawn processes, or touch files. Anything that
acts on the world must be a registered tool called through `ToolGateway.call`, where policy,
honeypot, approval and the exactly-once ledger apply.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

AGENT_CODE = sorted([*(REPO / "nodes").rglob("*.py"), *(REPO / "graphs").rglob("*.py")])

FORBIDDEN_MODULES = (
    "os",
    "subprocess",
    "shutil",
    "tempfile",
    "socket",
    "pty",
    "signal",
    "multiprocessing",
    "ctypes",
    "httpx",
    "requests",
    "urllib",
    "tools.sandbox",
    "tools.ledger",
    "tools.honeypot",
    "tools.honeypot_shell",
    "tools.honeypot_python",
    "tools.call_ledger",
    "tools.tool_run",
    "tools.approval_step",
)
BUILTIN_TOOLS = "tools.builtin"
"""Nodes may read a builtin tool's argument and result models, never its handler."""
FORBIDDEN_CALLS = {"open", "exec", "eval", "compile", "__import__"}
FORBIDDEN_METHODS = {
    "write_text",
    "write_bytes",
    "read_bytes",
    "unlink",
    "rmdir",
    "mkdir",
    "touch",
    "chmod",
    "symlink_to",
    "handler",
    "sandbox",
    "get_sandbox",
    "run_command",
    "run_code",
}


def _problems(path: Path) -> list[str]:
    return _problems_in(path.read_text(), str(path.relative_to(REPO)))


def _problems_in(source: str, where: str) -> list[str]:
    tree = ast.parse(source, filename=where)
    found: list[str] = []

    def forbidden(module: str) -> bool:
        return any(module == m or module.startswith(m + ".") for m in FORBIDDEN_MODULES)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if forbidden(alias.name) or alias.name.startswith(BUILTIN_TOOLS):
                    found.append(f"{where}:{node.lineno} imports {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            if forbidden(node.module):
                found.append(f"{where}:{node.lineno} imports from {node.module}")
            elif node.module == BUILTIN_TOOLS:
                found.append(f"{where}:{node.lineno} imports tool modules from {node.module}")
            elif node.module.startswith(BUILTIN_TOOLS + "."):
                for alias in node.names:
                    if not alias.name.endswith(("Args", "Result")):
                        found.append(f"{where}:{node.lineno} imports {node.module}.{alias.name}")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in FORBIDDEN_CALLS:
                found.append(f"{where}:{node.lineno} calls {func.id}()")
        if isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_METHODS:
            found.append(f"{where}:{node.lineno} uses .{node.attr}")
    return found


def test_there_is_agent_code_to_check() -> None:
    names = {p.name for p in AGENT_CODE}
    assert {"coder.py", "tester.py", "reviewer.py", "deliver.py", "team.py"} <= names


@pytest.mark.parametrize("path", AGENT_CODE, ids=lambda p: str(p.relative_to(REPO)))
def test_agent_code_acts_on_the_world_only_through_the_gateway(path: Path) -> None:
    assert _problems(path) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import subprocess\n", "imports subprocess"),
        ("from tools.sandbox import LocalSandbox\n", "imports from tools.sandbox"),
        ("from tools.builtin.run_python import run_python\n", "tools.builtin.run_python.run_py"),
        ("from tools.builtin import write_file\n", "imports tool modules"),
        ("open('x', 'w').write('y')\n", "calls open()"),
        ("from pathlib import Path\nPath('x').write_text('y')\n", "uses .write_text"),
        ("from tools.builtin.write_file import SPEC\nSPEC.handler\n", "uses .handler"),
        ("from service import deps\ndeps.get_sandbox(None)\n", "uses .get_sandbox"),
    ],
)
def test_the_rules_catch_each_way_around_the_gateway(source: str, expected: str) -> None:
    problems = _problems_in(source, "nodes/probe.py")
    assert any(expected in p for p in problems), problems


def test_the_allowed_imports_pass() -> None:
    allowed = (
        "from tools.builtin.run_tests import RunTestsResult\n"
        "from tools.gateway import CallContext\n"
        "x = 'a'.replace('a', 'b')\n"
    )
    assert _problems_in(allowed, "nodes/probe.py") == []
