"""A served run's `architecture` is bounded by the operator's allowed set, like the other caps.

The server's auth handler runs these checks on every run a client creates; a refusal is the
4xx the client sees, naming the field and what it may be.
"""

from __future__ import annotations

from typing import Any

import pytest

from service.api.run_guard import Refused, check_context, check_run
from service.settings import Settings

CAPPED = Settings(architectures_allowed=["selection", "repo_agent"])


@pytest.mark.parametrize("value", ["auto", "selection", "repo_agent", None])
def test_auto_and_allowed_architectures_are_accepted(value: str | None) -> None:
    check_context({"architecture": value}, tenant="t", settings=CAPPED)


@pytest.mark.parametrize("value", ["team", "plan_and_solve", "swarm", "", "AUTO", ["auto"], 3])
def test_other_architectures_are_refused_with_the_allowed_ones(value: Any) -> None:
    with pytest.raises(Refused) as refused:
        check_context({"architecture": value}, tenant="t", settings=CAPPED)
    assert refused.value.status == 422
    assert refused.value.reason == (
        "context.architecture must be 'auto' or one of selection, repo_agent"
    )


def test_the_refusal_covers_the_config_and_the_native_run_body() -> None:
    body = {
        "kwargs": {"input": {"goal": "x"}, "config": {"configurable": {"architecture": "react"}}}
    }
    with pytest.raises(Refused) as refused:
        check_run(body, tenant="t", can_approve=True, settings=CAPPED)
    assert refused.value.status == 422
    assert "config.configurable.architecture" in refused.value.reason
    check_run(
        {"kwargs": {"input": {"goal": "x"}, "context": {"architecture": "selection"}}},
        tenant="t",
        can_approve=True,
        settings=CAPPED,
    )


def test_by_default_every_architecture_is_allowed() -> None:
    for name in ("team", "selection", "react", "plan_and_solve", "repo_agent", "reflexion"):
        check_context({"architecture": name}, tenant="t", settings=Settings())
