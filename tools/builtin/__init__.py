"""The builtin tools, one per module, and the registry that holds them all."""

from __future__ import annotations

from typing import Any

from tools.builtin import (
    apply_patch,
    deliver_files,
    list_files,
    math_eval,
    read_file,
    run_candidates,
    run_python,
    run_tests,
    search_memory,
    write_file,
)
from tools.registry import ToolRegistry, ToolSpec

__all__ = ["BUILTIN_SPECS", "default_registry"]

BUILTIN_SPECS: tuple[ToolSpec[Any, Any], ...] = (
    apply_patch.SPEC,
    deliver_files.SPEC,
    list_files.SPEC,
    math_eval.SPEC,
    read_file.SPEC,
    run_candidates.SPEC,
    run_python.SPEC,
    run_tests.SPEC,
    search_memory.SPEC,
    write_file.SPEC,
)


def default_registry() -> ToolRegistry:
    """A fresh registry with every builtin tool."""
    return ToolRegistry(BUILTIN_SPECS)
