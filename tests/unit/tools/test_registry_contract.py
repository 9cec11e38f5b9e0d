"""Contract tests for every registered tool, and the tool-drift guard on committed schemas."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from pydantic import BaseModel

from tools.builtin import default_registry
from tools.registry import (
    CODE_FORMAT,
    PATH_FORMAT,
    ToolContext,
    ToolRegistry,
    ToolSpec,
)
from tools.schema_snapshots import SCHEMAS_DIR, snapshot_problems, write_snapshots
from tools.workspaces import MemoryWorkspace

REPO = Path(__file__).resolve().parents[3]
REGISTRY = default_registry()
SPECS = REGISTRY.list()
EXAMPLES = [(spec, ex) for spec in SPECS for ex in spec.examples]


def ids(item: Any) -> str:
    if isinstance(item, ToolSpec):
        return item.name
    return str(getattr(item, "title", item))


def test_default_registry_has_every_builtin() -> None:
    assert REGISTRY.names() == [
        "apply_patch",
        "deliver_files",
        "deliver_patch",
        "list_files",
        "math_eval",
        "read_file",
        "run_candidates",
        "run_python",
        "run_repo_tests",
        "run_tests",
        "search_memory",
        "write_file",
    ]


@pytest.mark.parametrize("spec", SPECS, ids=ids)
def test_schemas_are_valid_json_schema_and_json_round_trip(spec: ToolSpec[Any, Any]) -> None:
    for schema in (spec.args_schema(), spec.result_schema()):
        assert jsonschema_rs.meta.is_valid(schema)
    exported = spec.json_schema()
    assert json.loads(json.dumps(exported)) == exported
    assert exported["version"] == spec.version
    definition = spec.tool_definition()["function"]
    assert definition["name"] == spec.name and definition["parameters"] == spec.args_schema()


@pytest.mark.parametrize("spec", SPECS, ids=ids)
def test_every_tool_documents_at_least_one_example_with_a_result(spec: ToolSpec[Any, Any]) -> None:
    assert spec.examples, f"{spec.name} has no documented example"
    assert any(ex.result is not None for ex in spec.examples)
    assert all(ex.expect is not None for ex in spec.examples)


def _round_trip(model: type[BaseModel], instance: BaseModel, schema: dict[str, Any]) -> None:
    dumped = instance.model_dump(mode="json")
    jsonschema_rs.validate(schema, dumped)
    assert model.model_validate_json(json.dumps(dumped)) == instance


@pytest.mark.parametrize(("spec", "example"), EXAMPLES, ids=ids)
def test_documented_examples_validate_against_the_exported_schemas(
    spec: ToolSpec[Any, Any], example: Any
) -> None:
    _round_trip(spec.args_model, example.args, spec.args_schema())
    if example.result is not None:
        _round_trip(spec.result_model, example.result, spec.result_schema())
        assert example.expect is None or example.expect(example.result)


@pytest.mark.parametrize(
    ("spec", "example"), [(s, e) for s, e in EXAMPLES if not s.needs_sandbox], ids=ids
)
async def test_documented_examples_run_and_results_match_the_result_schema(
    spec: ToolSpec[Any, Any], example: Any
) -> None:
    ctx = ToolContext(workspace=MemoryWorkspace(example.files), tenant_id="t", task_id="task")
    result = await spec.handler(example.args, ctx)
    assert isinstance(result, spec.result_model)
    jsonschema_rs.validate(spec.result_schema(), result.model_dump(mode="json"))
    assert example.expect is not None and example.expect(result), result
    if example.result is not None:
        assert result == example.result, "the documented result is not what the tool returns"


def _honeypot_scans(spec: ToolSpec[Any, Any]) -> bool:
    formats = json.dumps(spec.args_schema())
    return PATH_FORMAT in formats or CODE_FORMAT in formats


SCANNED = [spec for spec in SPECS if _honeypot_scans(spec)]


def test_the_honeypot_scans_the_tools_that_take_code_or_paths() -> None:
    assert {"run_python", "read_file", "write_file"} <= {spec.name for spec in SCANNED}


@pytest.mark.parametrize("spec", SCANNED, ids=[spec.name for spec in SCANNED])
def test_tools_the_honeypot_can_catch_have_a_valid_simulated_result(
    spec: ToolSpec[Any, Any],
) -> None:
    assert spec.simulate is not None, f"{spec.name} needs `simulate` for the honeypot"
    simulated = spec.simulate(spec.examples[0].args)
    jsonschema_rs.validate(spec.result_schema(), simulated.model_dump(mode="json"))


def test_malformed_arguments_are_rejected_by_every_args_model() -> None:
    for spec in SPECS:
        with pytest.raises(ValueError):
            spec.args_model.model_validate({"definitely_not_a_field": 1})


# ------------------------------------------------------------------------- tool-drift guard
def test_committed_snapshots_match_the_registry() -> None:
    problems = snapshot_problems(REGISTRY)
    assert problems == [], "\n".join(problems)


def test_snapshot_files_are_the_exported_schemas() -> None:
    for spec in SPECS:
        saved = json.loads((SCHEMAS_DIR / f"{spec.name}.json").read_text())
        assert saved == spec.json_schema()


def _changed(spec: ToolSpec[Any, Any], **fields: Any) -> ToolRegistry:
    return ToolRegistry([dataclasses.replace(spec, **fields)])


def test_drift_guard_fails_when_a_schema_changes_without_a_version_bump(tmp_path: Path) -> None:
    spec = REGISTRY.get("read_file")
    write_snapshots(ToolRegistry([spec]), tmp_path)
    assert snapshot_problems(ToolRegistry([spec]), tmp_path) == []

    class Wider(spec.args_model):  # type: ignore[name-defined,misc]
        encoding: str = "utf-8"

    drifted = _changed(spec, args_model=Wider)
    [problem] = snapshot_problems(drifted, tmp_path)
    assert "changed but its version is still 1.0.0" in problem and "bump" in problem

    described = _changed(spec, description="Reads a file.")
    assert "bump the version" in snapshot_problems(described, tmp_path)[0]

    bumped = _changed(spec, args_model=Wider, version="1.1.0")
    assert "snapshot is for version 1.0.0" in snapshot_problems(bumped, tmp_path)[0]
    write_snapshots(bumped, tmp_path)
    assert snapshot_problems(bumped, tmp_path) == []

    downgraded = _changed(spec, args_model=Wider, version="1.0.1")
    assert "went down" in snapshot_problems(downgraded, tmp_path)[0]


def test_drift_guard_reports_missing_and_orphaned_snapshots(tmp_path: Path) -> None:
    (tmp_path / "retired_tool.json").write_text("{}")
    problems = snapshot_problems(ToolRegistry([REGISTRY.get("math_eval")]), tmp_path)
    assert any("no snapshot math_eval.json" in p for p in problems)
    assert any("retired_tool.json" in p and "not registered" in p for p in problems)
    write_snapshots(ToolRegistry([REGISTRY.get("math_eval")]), tmp_path)
    assert not (tmp_path / "retired_tool.json").exists()


def test_check_command_passes_on_the_committed_snapshots() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tools.schema_snapshots", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------------------- registry API
def test_registry_refuses_duplicates_and_names_known_tools_for_unknown_ones() -> None:
    registry = ToolRegistry([REGISTRY.get("math_eval")])
    with pytest.raises(ValueError, match="already registered"):
        registry.register(REGISTRY.get("math_eval"))
    with pytest.raises(KeyError, match="available: math_eval"):
        registry.get("rm")
    assert "math_eval" in registry and len(registry) == 1
    assert set(registry.json_schemas()) == {"math_eval"}


def test_spec_rejects_bad_names_and_versions() -> None:
    spec = REGISTRY.get("math_eval")
    with pytest.raises(ValueError, match="MAJOR.MINOR.PATCH"):
        dataclasses.replace(spec, version="1.0")
    with pytest.raises(ValueError, match="must match"):
        dataclasses.replace(spec, name="Math Eval")
