"""The builtin tools, one per module, and the registry that holds them all.

Two kinds, both held to the same contract (`tests/unit/tools/test_registry_contract.py`: a
schema snapshot per version, examples that validate, a handler that runs through the gateway):

| tool | called today by |
|---|---|
| `run_tests`, `deliver_files` | the pipeline team (tester, deliver) |
| `run_candidates`, `deliver_files` | the execution-first team (judge, deliver) |
| `read_file`, `list_files`, `write_file`, `apply_patch` | the catalogue (below) |
| `run_repo_tests`, `deliver_patch` | repository tasks (the catalogue; the patch after approval) |
| `run_python`, `search_memory`, `math_eval` | the catalogue (below) |

The catalogue is what a tool-calling agent binds (`ToolGateway.tool_definitions`, filtered by the
tenant's policy): no team node calls it, and every call goes through the gateway like the team's.
"""

from __future__ import annotations

from typing import Any

from tools.builtin import (
    apply_patch,
    deliver_files,
    deliver_patch,
    list_files,
    math_eval,
    read_file,
    run_candidates,
    run_python,
    run_repo_tests,
    run_tests,
    search_memory,
    write_file,
)
from tools.registry import ToolRegistry, ToolSpec

__all__ = ["BUILTIN_SPECS", "default_registry"]

BUILTIN_SPECS: tuple[ToolSpec[Any, Any], ...] = (
    apply_patch.SPEC,
    deliver_files.SPEC,
    deliver_patch.SPEC,
    list_files.SPEC,
    math_eval.SPEC,
    read_file.SPEC,
    run_candidates.SPEC,
    run_python.SPEC,
    run_repo_tests.SPEC,
    run_tests.SPEC,
    search_memory.SPEC,
    write_file.SPEC,
)


def default_registry() -> ToolRegistry:
    """A fresh registry with every builtin tool."""
    return ToolRegistry(BUILTIN_SPECS)
