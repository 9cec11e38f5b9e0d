"""The served-input checks on values a client can shape freely, and the graph's second line.

The server tests (`tests/integration/security_served/`) send these through real servers; here
the corner cases that once escaped as exceptions (a 500) and the checks no server test can
reach, because the server's auth handler refuses the request first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nodes.approvers import answered_by
from service.api.run_guard import Refused, check_answer, check_command, check_context
from service.serving.serve import aegra_env
from service.settings import Settings


@pytest.mark.parametrize("value", [["auto"], {"mode": "auto"}, 3, None, "AUTO"])
def test_an_approval_mode_of_any_shape_is_refused_or_ignored(value: Any) -> None:
    if value is None:  # an absent option
        check_context({"approve": value}, tenant="t", settings=Settings())
        return
    with pytest.raises(Refused) as refused:
        check_context({"approve": value}, tenant="t", settings=Settings())
    assert refused.value.status == 422 and "context.approve" in refused.value.reason


def test_answers_by_interrupt_id_are_one_level_deep() -> None:
    check_answer({"0123": {"approved": True, "comment": "ok"}})
    nested: Any = {"approved": True}
    for _ in range(5000):
        nested = {"id": nested}
    with pytest.raises(Refused) as refused:
        check_answer(nested)
    assert refused.value.status == 422
    with pytest.raises(Refused):
        check_answer({"a": {"b": {"approved": True}}})


def test_a_command_may_edit_the_tasks_input_and_nothing_else() -> None:
    check_command({"update": {"goal": "Write add(a, b)."}}, can_approve=False)  # a DLQ replay
    for command, status in (
        ({"update": {"goal": "x", "approval": {"approved": True}}}, 403),
        ({"update": {"destination": "/"}}, 403),
        ({"update": {"goal": "  "}}, 422),
        ({"update": {"goal": "x"}, "goto": "deliver"}, 403),
    ):
        with pytest.raises(Refused) as refused:
            check_command(command, can_approve=True)
        assert refused.value.status == status, command


def _config(permissions: list[str] | None) -> dict[str, Any]:
    if permissions is None:
        return {"configurable": {"thread_id": "t"}}
    user = {"identity": "alice", "permissions": permissions}
    return {"configurable": {"thread_id": "t", "langgraph_auth_user": user}}


def test_only_a_key_that_may_approve_answers_in_the_graph() -> None:
    assert answered_by(_config(["tenant", "approve"])) == "human (alice)"
    assert answered_by(_config(None)) == "human"  # in-process: the local user
    with pytest.raises(PermissionError, match="may not approve"):
        answered_by(_config(["tenant"]))


def test_aegra_serves_no_protocol_v2_routes(tmp_path: Path) -> None:
    """Aegra's v2 commands create runs without its run auth handler: `strategos serve` turns
    them off, so every run passes `service.api.run_guard`."""
    settings = Settings(database_url=None, redis_url=None)
    env = aegra_env(settings, host="127.0.0.1", port=2099, config=tmp_path / "x", base={})
    assert env["FF_V2_EVENT_STREAMING"] == "false"
