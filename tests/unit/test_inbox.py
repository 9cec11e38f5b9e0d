"""Agent Inbox's answers, read by the graph and checked by the server before a run starts.

The graph reads every answer shape (`parse_resume`); the server refuses malformed ones with a 422
before a run is created (`check_answer`), and only a key that may approve can answer at all.
"""

from __future__ import annotations

from typing import Any

import pytest

from graphs.state import DeliveryApprovalRequest
from nodes.approvers import parse_resume
from nodes.inbox import EDIT_REFUSED, delivery_markdown, fenced, question_for, request_of
from service.api.run_guard import Refused, check_answer, check_command


@pytest.mark.parametrize(
    ("value", "approved", "comment"),
    [
        ([{"type": "accept", "args": None}], True, ""),
        ({"type": "accept", "args": {"ignored": 1}}, True, ""),
        ([{"type": "ignore", "args": None}], False, ""),
        ([{"type": "response", "args": " rename it "}], False, "rename it"),
        ([{"type": "edit", "args": {"action": "deliver", "args": {}}}], False, EDIT_REFUSED),
        ([{"approved": True, "comment": "ok"}], True, "ok"),
        ({"approved": False, "comment": "no"}, False, "no"),
        ([True], True, ""),
    ],
)
def test_every_answer_shape_reads_as_the_humans_decision(
    value: Any, approved: bool, comment: str
) -> None:
    answer = parse_resume(value)
    assert (answer.approved, answer.comment) == (approved, comment)


@pytest.mark.parametrize(
    "value",
    [
        [{"type": "response", "args": None}],
        [{"type": "response", "args": "x" * 4001}],
        [{"type": "accept"}, {"type": "accept"}],
        [[{"type": "accept"}]],
        {"type": "approve"},
    ],
)
def test_a_malformed_inbox_answer_is_a_rejection_that_says_so(value: Any) -> None:
    answer = parse_resume(value)
    assert answer.approved is False and "invalid approval answer" in answer.comment


@pytest.mark.parametrize(
    "answer",
    [
        [{"type": "accept", "args": None}],
        [{"type": "response", "args": "rename it"}],
        {"0123": [{"type": "ignore", "args": None}]},
        [{"approved": True, "comment": ""}],
        {"type": "edit", "args": {"action": "deliver", "args": {}}},
    ],
)
def test_the_server_accepts_the_inbox_answers(answer: Any) -> None:
    check_answer(answer)
    check_command({"resume": answer}, can_approve=True)


@pytest.mark.parametrize(
    "answer",
    [
        [],
        [{"type": "accept"}, {"type": "accept"}],
        [[{"type": "accept"}]],
        [{"0123": {"approved": True}}],
        {"type": "approve"},
        {"type": "accept", "args": None, "approved": True},
        [{"type": "response", "args": "x" * 4001}],
        [{"type": "response", "args": 3}],
    ],
)
def test_the_server_refuses_malformed_inbox_answers(answer: Any) -> None:
    with pytest.raises(Refused) as refused:
        check_answer(answer)
    assert refused.value.status == 422


def test_a_key_that_may_not_approve_cannot_accept_from_the_inbox() -> None:
    with pytest.raises(Refused) as refused:
        check_command({"resume": [{"type": "accept", "args": None}]}, can_approve=False)
    assert refused.value.status == 403


def test_the_request_is_read_back_from_the_question_and_from_the_old_shape() -> None:
    request = DeliveryApprovalRequest(
        action="deliver",
        summary="done",
        files=["a.py"],
        destination="out",
        tests="goal examples 0/1",
        contents={"a.py": "x = '```'\n"},
        failing=["f() == 1: got 2"],
        flags=["honeypot: os.system"],
    )
    value = question_for("deliver", request.model_dump(), delivery_markdown(request))
    assert request_of(value) == request.model_dump()
    assert request_of(value[0]) == request.model_dump()
    assert request_of(request.model_dump()) == request.model_dump()  # a thread paused before
    assert request_of("yes") is None
    description = value[0]["description"] or ""
    assert "f() == 1: got 2" in description and "honeypot: os.system" in description
    assert fenced("x = '```'", "python") in description  # the code's own fence cannot close it
