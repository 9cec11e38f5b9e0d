"""Fuzzing the served run schema (`context`, `config`, `command`) against `langgraph dev`.

Hypothesis builds run requests from the served fields and everything around them: host paths
(aimed at a sentinel folder outside the data dir, absolute, relative and climbing), other
tenants' names, limits oversized, negative and of the wrong type, unknown and in-process-only
keys, state writes and jumps in commands, and malformed or unauthorised answers, sent by alice,
bob, carol (whom the operator lets deliver by policy) or alice's agent key, to a thread of the
caller's, another tenant's, or a fresh one. Whatever it sends:

- the server never answers 5xx;
- a request the rules forbid (`must_refuse`, an independent reading of docs/security.md) gets
  a 4xx, never a run;
- nothing is written outside the server's data dir (the sentinel stays empty, nothing appears
  next to the data dir, deliveries stay in their task's folder);
- every ledgered action of a thread acts for the thread's owner, and its deliveries were
  answered by a human of that tenant or by the operator's policy for it; every memory stored
  belongs to the tenant whose task stored it.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from graphs.context import IN_PROCESS_ONLY
from service.api.run_guard import SERVED_FIELDS
from service.settings import Settings
from tests.integration.security_served.conftest import AUTO_APPROVED, Served, memory_points
from tests.integration.test_langgraph_server import GOAL, GRAPH_ID

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

EXAMPLES = 60
JOIN_TIMEOUT_S = 120.0
TENANT_OF = {"alice": "alice", "bob": "bob", "carol": "carol", "agent": "alice"}
CAPS = {
    "max_steps": Settings().max_steps_cap,
    "max_iterations": Settings().max_iterations_cap,
    "token_budget": Settings().token_budget_cap,
}
ALLOWED_ARCHITECTURES = Settings().architectures_allowed
_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

# --------------------------------------------------------------------------- strategies

PATH_MARKERS = ("<sentinel>", "<sentinel-file>", "<climb>")
"""Host paths, filled in per server: the sentinel folder, a file in it, and a relative path
from a task's delivery folder up to that file."""
HOST_PATHS = st.sampled_from(
    [*PATH_MARKERS, "/etc/cron.d/strategos", "../x", "a/../../x", "./x", "~/.ssh", ".x", ""]
)
TENANTS = st.sampled_from(["alice", "bob", "carol", "local", "langgraph-studio-user", "*"])
NUMBERS = st.one_of(
    st.integers(min_value=-(10**12), max_value=10**12),
    st.sampled_from([0, -1, 1, 3, 20, 21, 200, 201, 500_000, 500_001, 2**63]),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    NUMBERS,
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    HOST_PATHS,
    TENANTS,
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "approve": st.one_of(st.sampled_from(["ask", "auto", "deny", "AUTO", "yes"]), VALUES),
    "delivery_path": st.one_of(st.sampled_from(["out", "a/b", "v1.2"]), HOST_PATHS, VALUES),
    "max_steps": st.one_of(st.integers(1, 12), NUMBERS, VALUES),
    "max_iterations": st.one_of(st.integers(1, 3), NUMBERS, VALUES),
    "token_budget": st.one_of(st.integers(1, 100_000), NUMBERS, VALUES),
    "use_memory": st.one_of(st.booleans(), VALUES),
    "architecture": st.one_of(st.sampled_from(["auto", "team", "repo_agent", "swarm"]), VALUES),
}
KEYS = st.one_of(
    st.sampled_from(sorted(SERVED_FIELDS | IN_PROCESS_ONLY)),
    st.sampled_from(["thread_id", "checkpoint_id", "user_id", "langgraph_auth_user", "workdir"]),
    st.text(min_size=1, max_size=8),
)


def chance(draw: st.DrawFn, percent: int) -> bool:
    """True `percent` times in a hundred (shrinking moves towards False)."""
    return draw(st.integers(0, 99)) >= 100 - percent


@st.composite
def contexts(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly served fields with plausible or hostile values, sometimes anything at all."""
    served = draw(st.dictionaries(st.sampled_from(sorted(FIELD_VALUES)), st.just(None), max_size=3))
    context = {name: draw(FIELD_VALUES[name]) for name in served}
    extra = draw(st.dictionaries(KEYS, VALUES, max_size=2)) if chance(draw, 25) else {}
    return {**context, **extra}


ANSWERS = st.one_of(
    st.booleans(),
    st.fixed_dictionaries({"approved": st.booleans()}, optional={"comment": st.text(max_size=20)}),
    st.fixed_dictionaries({"approved": st.sampled_from(["yes", 1, None, "true"])}),
    VALUES,
)
COMMANDS = st.fixed_dictionaries(
    {"resume": ANSWERS},
    optional={
        "update": st.dictionaries(
            st.sampled_from(["approval", "destination", "files", "goal", "report", "best"]),
            st.one_of(
                st.just({"approved": True, "comment": "forged"}), st.just(GOAL), HOST_PATHS, VALUES
            ),
            max_size=2,
        ),
        "goto": st.one_of(st.sampled_from(["deliver", "approval", "coder"]), VALUES),
    },
)


@st.composite
def run_requests(draw: st.DrawFn) -> dict[str, Any]:
    """A body for `POST /threads/{id}/runs`: context, config and an input or a command."""
    body: dict[str, Any] = {"assistant_id": "x" if chance(draw, 5) else GRAPH_ID}
    if chance(draw, 70):
        body["context"] = draw(contexts())
    if chance(draw, 20):
        body["config"] = {"configurable": draw(contexts())}
    if chance(draw, 50):
        body["command"] = draw(COMMANDS)
    else:
        body["input"] = draw(VALUES) if chance(draw, 15) else {"goal": GOAL}
    return body


@dataclass(frozen=True)
class Attempt:
    """Who sends which body to which thread."""

    who: str
    thread: str
    body: dict[str, Any]


ATTEMPTS = st.builds(
    Attempt,
    who=st.sampled_from(sorted(TENANT_OF)),
    thread=st.sampled_from(["own", "other", "fresh", "unknown"]),
    body=run_requests(),
)

# --------------------------------------------------------------------------- the oracle


def must_refuse(body: dict[str, Any], who: str) -> str | None:
    """Why the served-input rules forbid this request, or None if they may allow it."""
    tenant = TENANT_OF[who]
    sources = [("context", body.get("context"))]
    config = body.get("config")
    if isinstance(config, dict):
        sources.append(("config.configurable", config.get("configurable")))
    for where, given_ in sources:
        if not isinstance(given_, dict):
            continue
        for name, value in given_.items():
            if name in IN_PROCESS_ONLY:
                return f"{where}.{name} is the server's to decide"
            if where == "context" and name not in SERVED_FIELDS:
                return f"{where}.{name} is not a run option"
            if name not in SERVED_FIELDS or value is None:
                continue
            if reason := _bad_value(name, value, tenant):
                return f"{where}.{name}: {reason}"
    command = body.get("command")
    if isinstance(command, dict):
        if command.get("goto") not in (None, {}, []):
            return "a command may not jump"
        update = command.get("update")
        if update not in (None, {}, []) and not _an_input_edit(update):
            return "a command may write only the task's input"
        if command.get("resume") is not None:
            if who == "agent":
                return "an agent key may not answer"
            if not _an_answer(command["resume"], by_id=True):
                return "a malformed answer"
    return None


def _bad_value(name: str, value: Any, tenant: str) -> str | None:
    if name == "approve":
        if value not in ("ask", "auto", "deny"):
            return "not a mode"
        if value == "auto" and f"{tenant}:deliver_files" not in AUTO_APPROVED:
            return "looser than the operator's policy"
    elif name == "delivery_path":
        parts = value.split("/") if isinstance(value, str) else []
        if len(str(value)) > 200 or not parts or not all(_PART.fullmatch(p) for p in parts):
            return "leaves the task's folder"
    elif name == "use_memory":
        if not isinstance(value, bool):
            return "not a flag"
    elif name == "architecture":
        if value != "auto" and value not in ALLOWED_ARCHITECTURES:
            return "not an allowed architecture"
    elif isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= CAPS[name]:
        return "outside 1..cap"
    return None


def _an_input_edit(update: Any) -> bool:
    """A dead-letter replay's edit: the goal or entry point, as text a task could start with."""
    return isinstance(update, dict) and all(
        name in ("goal", "entry_point")
        and isinstance(value, str)
        and value.strip() != ""
        and len(value) <= 20_000
        for name, value in update.items()
    )


def _an_answer(answer: Any, *, by_id: bool) -> bool:
    if isinstance(answer, bool):
        return True
    if not isinstance(answer, dict):
        return False
    if by_id and answer and "approved" not in answer:
        return all(_an_answer(value, by_id=False) for value in answer.values())
    comment = answer.get("comment", "")
    return (
        isinstance(answer.get("approved"), bool)
        and isinstance(comment, str)
        and len(comment) <= 4000
        and set(answer) <= {"approved", "comment"}
    )


# --------------------------------------------------------------------------- the world


@dataclass
class World:
    """The server, sync clients per caller, and every thread the fuzz touched, by owner."""

    served: Served
    http: httpx.Client
    owners: dict[str, str] = field(default_factory=dict)
    waiting: dict[str, str] = field(default_factory=dict)

    def thread_for(self, attempt: Attempt) -> str:
        tenant = TENANT_OF[attempt.who]
        if attempt.thread == "own":
            return self.waiting[tenant]
        if attempt.thread == "other":
            return self.waiting["bob" if tenant == "alice" else "alice"]
        if attempt.thread == "unknown":
            return str(uuid.uuid4())
        return self.new_thread(attempt.who)

    def new_thread(self, who: str) -> str:
        created = self.http.post("/threads", json={}, headers=self.served.headers(who))
        assert created.status_code == 200, created.text
        thread_id = str(created.json()["thread_id"])
        self.owners[thread_id] = TENANT_OF[who]
        return thread_id

    def fill(self, value: Any, thread_id: str) -> Any:
        """Put this server's real host paths where the strategy left markers."""
        sentinel = self.served.sentinel
        delivered = self.served.delivered(thread_id)
        paths = {
            "<sentinel>": str(sentinel),
            "<sentinel-file>": str(sentinel / "planted.txt"),
            "<climb>": os.path.relpath(sentinel / "planted.txt", delivered),
        }
        text = json.dumps(value)
        for marker, path in paths.items():
            text = text.replace(json.dumps(marker)[1:-1], json.dumps(path)[1:-1])
        return json.loads(text)


@pytest.fixture(scope="module")
def world(dev_served: Served) -> Iterator[World]:
    """Alice and bob each have a task waiting for approval; carol starts with none."""
    with httpx.Client(base_url=dev_served.url, timeout=JOIN_TIMEOUT_S) as http:
        world = World(dev_served, http)
        for who in ("alice", "bob", "carol"):
            thread_id = world.new_thread(who)
            body = {"assistant_id": GRAPH_ID, "input": {"goal": GOAL}}
            waited = http.post(
                f"/threads/{thread_id}/runs/wait", json=body, headers=dev_served.headers(who)
            )
            assert waited.status_code == 200, (waited.text, dev_served.tail())
            world.waiting[who] = thread_id
        yield world


def ledger_events(served: Served, thread_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The thread's events straight from the server's SQLite ledger."""
    with sqlite3.connect(served.data_dir / "ledger.sqlite") as db:
        rows = db.execute(
            "SELECT kind, data FROM strategos_events WHERE thread_id = ? ORDER BY id",
            (thread_id,),
        ).fetchall()
    return [(str(kind), json.loads(data)) for kind, data in rows]


def assert_acts_for_owners(world: World) -> None:
    """Every ledgered action acts for its thread's owner; deliveries answered as allowed."""
    for thread_id, owner in world.owners.items():
        events = ledger_events(world.served, thread_id)
        acted_for = {data["tenant_id"] for _, data in events if "tenant_id" in data}
        assert acted_for <= {owner}, (thread_id, owner, acted_for)
        allowed = {f"human ({owner})"}
        if f"{owner}:deliver_files" in AUTO_APPROVED:
            allowed.add("policy (auto)")
        approvers = {d["approver"] for k, d in events if k == "ApprovalGiven" and "approver" in d}
        assert approvers <= allowed, (thread_id, approvers)
        delivered = [
            d for k, d in events if k == "ActivityCompleted" and d.get("tool") == "deliver_files"
        ]
        assert not delivered or approvers, (thread_id, "delivered without an answer")


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(attempt=ATTEMPTS)
def test_served_run_requests_stay_within_bounds(world: World, attempt: Attempt) -> None:
    served = world.served
    thread_id = world.thread_for(attempt)
    body = world.fill(attempt.body, thread_id)
    response = world.http.post(
        f"/threads/{thread_id}/runs", json=body, headers=served.headers(attempt.who)
    )
    assert response.status_code < 500, (response.status_code, response.text, body)
    forbidden = must_refuse(body, attempt.who)
    event(f"{'forbidden' if forbidden else 'allowed'} → {response.status_code}")
    if response.status_code < 300:
        assert forbidden is None, (forbidden, body, response.text)
        run_id = response.json()["run_id"]
        joined = world.http.get(
            f"/threads/{thread_id}/runs/{run_id}/join", headers=served.headers(attempt.who)
        )
        assert joined.status_code < 500, (joined.status_code, joined.text)
    else:
        assert response.status_code >= 400, response.text
    served.assert_contained()
    assert_acts_for_owners(world)
    for point in memory_points(served):
        assert point["tenant"] in ("alice", "bob", "carol"), point
        owner = world.owners.get(point["task_id"])
        assert owner in (None, point["tenant"]), (point, owner)
