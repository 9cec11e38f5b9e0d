"""Policy: allow/deny per tool and tenant, argument rules, approval per side-effect class."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tools.builtin import default_registry
from tools.builtin.list_files import ListFilesArgs
from tools.builtin.read_file import ReadFileArgs
from tools.builtin.write_file import WriteFileArgs
from tools.policy import Policy, PolicyConfig

REGISTRY = default_registry()
READ = REGISTRY.get("read_file")
WRITE = REGISTRY.get("write_file")
PATCH = REGISTRY.get("apply_patch")
PY = REGISTRY.get("run_python")


def test_default_policy_allows_every_tool_and_asks_only_before_delivery() -> None:
    policy = Policy()
    for spec in REGISTRY.list():
        decision = policy.evaluate(spec, spec.examples[0].args, "acme")
        assert decision.allowed, decision.reason
        delivers = spec.name in {"deliver_files", "deliver_patch"}
        assert decision.requires_approval == delivers, spec.name


def test_global_and_tenant_deny_patterns() -> None:
    policy = Policy(
        PolicyConfig.model_validate(
            {"deny": ["run_*"], "tenants": {"acme": {"deny": ["write_file"]}}}
        )
    )
    assert not policy.check_tool(PY, "other").allowed
    assert "rule 'run_*'" in policy.check_tool(PY, "other").reason
    assert policy.check_tool(WRITE, "other").allowed
    decision = policy.check_tool(WRITE, "acme")
    assert not decision.allowed and decision.stage == "tool" and "'acme'" in decision.reason


def test_tenant_allow_list_replaces_the_global_one() -> None:
    policy = Policy(
        PolicyConfig.model_validate({"tenants": {"ro": {"allow": ["read_*", "list_*"]}}})
    )
    assert policy.check_tool(READ, "ro").allowed
    assert not policy.check_tool(WRITE, "ro").allowed
    assert policy.check_tool(WRITE, "someone-else").allowed


def test_explicit_tool_rule_can_disable_a_tool() -> None:
    policy = Policy(PolicyConfig.model_validate({"tools": {"run_python": {"allow": False}}}))
    assert not policy.check_tool(PY, "any").allowed


@pytest.mark.parametrize(
    "path", ["/etc/passwd", "../secrets.txt", "pkg/../../x", "a//b", ".git/config"]
)
def test_paths_outside_the_workspace_or_protected_are_denied(path: str) -> None:
    decision = Policy().check_args(READ, ReadFileArgs(path=path), "acme")
    assert not decision.allowed and decision.stage == "arguments"


def test_path_rules_per_tenant_and_tool_and_list_root_is_fine() -> None:
    policy = Policy(
        PolicyConfig.model_validate(
            {
                "tenants": {"acme": {"deny_paths": ["*.pem"]}},
                "tools": {"write_file": {"deny_paths": ["setup.py"]}},
            }
        )
    )
    assert not policy.check_args(READ, ReadFileArgs(path="keys/server.pem"), "acme").allowed
    assert policy.check_args(READ, ReadFileArgs(path="keys/server.pem"), "other").allowed
    denied = policy.check_args(WRITE, WriteFileArgs(path="setup.py", content=""), "x")
    assert not denied.allowed and "protected" in denied.reason
    assert policy.check_args(READ, ReadFileArgs(path="setup.py"), "x").allowed
    assert Policy().check_args(REGISTRY.get("list_files"), ListFilesArgs(prefix=""), "x").allowed


def test_argument_size_limit() -> None:
    policy = Policy(PolicyConfig(max_args_bytes=100))
    decision = policy.check_args(WRITE, WriteFileArgs(path="a", content="x" * 200), "t")
    assert not decision.allowed and "over the 100-byte limit" in decision.reason


def test_approval_by_side_effect_class_tenant_and_tool() -> None:
    policy = Policy(
        PolicyConfig.model_validate(
            {
                "approval": {"idempotent": True},
                "tenants": {"lax": {"approval": {"idempotent": False}}},
                "tools": {"apply_patch": {"require_approval": True}},
            }
        )
    )
    assert policy.approval_for(WRITE, "acme")[0] is True
    assert policy.approval_for(WRITE, "lax")[0] is False
    needed, why = policy.approval_for(PATCH, "acme")
    assert needed and "global rule requires" in why
    assert policy.approval_for(READ, "acme")[0] is False


def test_a_spec_that_always_needs_approval_cannot_be_waived() -> None:
    import dataclasses

    always = dataclasses.replace(WRITE, approval="always")
    policy = Policy(
        PolicyConfig.model_validate({"tools": {"write_file": {"require_approval": False}}})
    )
    assert policy.approval_for(always, "t") == (True, "tool 'write_file' always requires approval")
    assert policy.approval_for(WRITE, "t")[0] is False


def test_config_rejects_unknown_keys() -> None:
    with pytest.raises(ValidationError):
        PolicyConfig.model_validate({"alow": ["*"]})
