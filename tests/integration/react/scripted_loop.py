"""A small package with one failing test, and scripted ReAct turns that fix it.

Shared by the loop tests and the crash worker: the same files, the same script, so a resumed
process answers exactly as the first one would have.
"""

from __future__ import annotations

from typing import Any

PACKAGE = {
    "calc.py": "def add(a, b):\n    return a - b\n",
    "test_calc.py": "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
}
GOAL = "The test in test_calc.py fails. Fix the code so that it passes."
PATCH = """\
--- a/calc.py
+++ b/calc.py
@@ -1,2 +1,2 @@
 def add(a, b):
-    return a - b
+    return a + b
"""
FIXED = "def add(a, b):\n    return a + b\n"


def call(name: str, **args: Any) -> dict[str, Any]:
    """A scripted tool call."""
    return {"name": name, "args": args}


def fixing_rules() -> list[dict[str, Any]]:
    """read → patch → run the tests → finish; each turn chosen by what the model has seen."""
    return [
        {
            "role": "react",
            "when": ['"passed": 1'],
            "tool_calls": [call("finish", summary="Fixed add: it subtracted.")],
        },
        {
            "role": "react",
            "when": ['"action": "modified"'],
            "tool_calls": [call("run_tests", test_file="test_calc.py")],
        },
        {
            "role": "react",
            "when": ["return a - b"],
            "tool_calls": [call("apply_patch", patch=PATCH)],
        },
        {"role": "react", "tool_calls": [call("read_file", path="calc.py")]},
    ]


REPO_GOAL = "tests/test_calc.py fails; fix the package."
REPO_FILES = {
    "pkg/__init__.py": "",
    "pkg/calc.py": "def add(a, b):\n    return a - b\n",
    "tests/test_calc.py": (
        "from pkg.calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    ),
}
REPO_PATCH = """\
--- a/pkg/calc.py
+++ b/pkg/calc.py
@@ -1,2 +1,2 @@
 def add(a, b):
-    return a - b
+    return a + b
"""
REPO_RULES: list[dict[str, Any]] = [
    {
        "role": "react",
        "when": ['"passed": true'],
        "tool_calls": [call("finish", summary="add subtracted; it adds now")],
    },
    {"role": "react", "when": ['"action": "modified"'], "tool_calls": [call("run_repo_tests")]},
    {
        "role": "react",
        "when": ["return a - b"],
        "tool_calls": [call("apply_patch", patch=REPO_PATCH)],
    },
    {"role": "react", "tool_calls": [call("read_file", path="pkg/calc.py")]},
]
