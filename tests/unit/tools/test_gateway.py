"""The gateway end to end with the embedded ledger and a scripted sandbox."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from tests.unit.tools.conftest import Clock, ScriptedSandbox
from tools.builtin import BUILTIN_SPECS
from tools.gateway import ApprovalDecision, ApprovalRequest, CallContext, ToolGateway
from tools.ledger import SqliteLedger, idempotency_key
from tools.pii import PiiVault
from tools.policy import Policy, PolicyConfig
from tools.registry import SideEffect, ToolContext, ToolRegistry, ToolSpec
from tools.workspaces import MemoryWorkspace

THREAD = "thread-1"


class NoteArgs(BaseModel):
    note: str


class NoteResult(BaseModel):
    count: int


class Counter:
    """A tool with a counted side effect (the count lives outside the ledger)."""

    def __init__(self) -> None:
        self.runs = 0
        self.delay = 0.0

    async def handler(self, args: NoteArgs, ctx: ToolContext) -> NoteResult:
        await asyncio.sleep(self.delay)
        self.runs += 1
        await ctx.workspace.write("notes.txt", f"{args.note} #{self.runs}")
        return NoteResult(count=self.runs)

    def spec(
        self, side_effect: SideEffect = "side_effect", name: str = "note"
    ) -> ToolSpec[Any, Any]:
        return ToolSpec(
            name=name,
            version="1.0.0",
            description="Append a note (test tool).",
            args_model=NoteArgs,
            result_model=NoteResult,
            handler=self.handler,
            side_effect=side_effect,
            approval="on_policy",
        )


def make(
    ledger: SqliteLedger,
    sandbox: ScriptedSandbox,
    *extra: ToolSpec[Any, Any],
    policy: Policy | None = None,
    approver: Any = None,
    **kw: Any,
) -> ToolGateway:
    registry = ToolRegistry([*BUILTIN_SPECS, *extra])
    return ToolGateway(registry, ledger, policy, sandbox, approver, **kw)


def ctx(
    workspace: MemoryWorkspace | None = None, call_id: str = "call-1", **kw: Any
) -> CallContext:
    return CallContext(
        thread_id=THREAD,
        tool_call_id=call_id,
        workspace=workspace if workspace is not None else MemoryWorkspace(),
        tenant_id=kw.pop("tenant_id", "acme"),
        **kw,
    )


async def kinds(ledger: SqliteLedger) -> list[str]:
    return [event.kind for event in await ledger.events(THREAD)]


# ------------------------------------------------------------------ validation and errors
async def test_unknown_tool_lists_the_available_ones(
    ledger: SqliteLedger, sandbox: ScriptedSandbox
) -> None:
    obs = await make(ledger, sandbox).call("delete_everything", {}, ctx())
    assert not obs.ok and obs.error is not None and obs.error.code == "unknown_tool"
    assert "read_file" in obs.error.message


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({}, "path: Field required"),
        ({"path": 3}, "path: Input should be a valid string"),
        ({"path": "a.py", "mode": "rb"}, "mode: Extra inputs are not permitted"),
        (["a.py"], "must be a JSON object"),
        ("{not json", "not valid JSON"),
    ],
)
async def test_malformed_arguments_become_a_correctable_observation(
    ledger: SqliteLedger, sandbox: ScriptedSandbox, raw: Any, fragment: str
) -> None:
    gateway = make(ledger, sandbox)
    workspace = MemoryWorkspace({"a.py": "print(1)\n"})
    obs = await gateway.call("read_file", raw, ctx(workspace))
    assert not obs.ok and obs.error is not None and obs.error.code == "invalid_args"
    assert fragment in obs.error.message
    assert "required: path" in obs.error.message or "JSON" in obs.error.message
    assert json.loads(obs.for_model())["ok"] is False
    fixed = await gateway.call("read_file", '{"path": "a.py"}', ctx(workspace, "call-2"))
    assert fixed.ok and fixed.result is not None and fixed.result["content"] == "print(1)\n"
    assert "ToolCallInvalid" in await kinds(ledger)


async def test_a_tool_error_is_an_observation_not_an_exception(
    ledger: SqliteLedger, sandbox: ScriptedSandbox
) -> None:
    obs = await make(ledger, sandbox).call("read_file", {"path": "missing.py"}, ctx())
    assert not obs.ok and obs.error is not None and obs.error.code == "failed"
    assert "No file 'missing.py'" in obs.error.message
    assert await kinds(ledger) == ["ActivityScheduled", "ActivityFailed"]


async def test_a_crashing_tool_is_recorded_as_failed_and_replayed_without_rerunning(
    ledger: SqliteLedger, sandbox: ScriptedSandbox
) -> None:
    calls = 0

    async def broken(args: NoteArgs, tool_ctx: ToolContext) -> NoteResult:
        nonlocal calls
        calls += 1
        raise KeyError("boom")

    spec = dataclass_replace(Counter().spec(), handler=broken)
    gateway = make(
        ledger, sandbox, spec, policy=Policy(PolicyConfig(approval={"side_effect": False}))
    )
    first = await gateway.call("note", {"note": "x"}, ctx())
    assert first.error is not None and "KeyError" in first.error.message
    again = await gateway.call("note", {"note": "x"}, ctx())
    assert again.replayed and again.error is not None and again.error.message == first.error.message
    assert calls == 1


async def test_a_result_that_breaks_the_schema_is_reported(
    ledger: SqliteLedger, sandbox: ScriptedSandbox
) -> None:
    async def wrong(args: NoteArgs, tool_ctx: ToolContext) -> Any:
        return NoteArgs(note="not a result")

    spec = dataclass_replace(Counter().spec("read_only"), handler=wrong)
    obs = await make(ledger, sandbox, spec).call("note", {"note": "x"}, ctx())
    assert obs.error is not None and obs.error.code == "invalid_result"


async def test_a_slow_tool_hits_the_gateway_time_limit(
    ledger: SqliteLedger, sandbox: ScriptedSandbox
) -> None:
    counter = Counter()
    counter.delay = 5
    obs = await make(ledger, sandbox, counter.spec("read_only"), timeout_s=0.2).call(
        "note", {"note": "x"}, ctx()
    )
    assert obs.error is not None and "did not finish within" in obs.error.message


# ------------------------------------------------------------------------------- policy
async def test_policy_denies_tools_per_tenant_and_paths_outside(
    ledger: SqliteLedger, sandbox: ScriptedSandbox
) -> None:
    policy = Policy(PolicyConfig.model_validate({"tenants": {"acme": {"deny": ["run_python"]}}}))
    gateway = make(ledger, sandbox, policy=policy)
    obs = await gateway.call("run_python", {"code": "print(1)"}, ctx())
    assert obs.error is not None and obs.error.code == "denied" and "'acme'" in obs.error.message
    allowed = await gateway.call("run_python", {"code": "print(1)"}, ctx(tenant_id="other"))
    assert allowed.ok and len(sandbox.calls) == 1
    escape = await gateway.call("write_file", {"path": "../x.py", "content": ""}, ctx(call_id="c9"))
    assert escape.error is not None and escape.error.code == "denied"
    assert "outside the workspace" in escape.error.message
    assert (await kinds(ledger)).count("PolicyDenied") == 2
    names = [d["function"]["name"] for d in gateway.tool_definitions("acme")]
    assert "run_python" not in names and "read_file" in names


# ----------------------------------------------------------------------------- approval
class Approver:
    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.requests: list[ApprovalRequest] = []

    async def __call__(self, request: ApprovalRequest) -> Any:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


async def test_rejected_approval_does_not_run_the_tool(
    ledger: SqliteLedger, sandbox: ScriptedSandbox
) -> None:
    counter = Counter()
    approver = Approver(ApprovalDecision(approved=False, comment="not on Fridays"))
    gateway = make(ledger, sandbox, counter.spec(), approver=approver)
    obs = await gateway.call("note", {"note": "deploy"}, ctx())
    assert obs.error is not None and obs.error.code == "rejected"
    assert "not on Fridays" in obs.error.message and counter.runs == 0
    [request] = approver.requests
    assert request.tool == "note" and request.args == {"note": "deploy"}
    assert request.side_effect == "side_effect" and "side_effect tools" in request.reason
    assert await kinds(ledger) == ["ApprovalRequested", "ApprovalRejected"]


async def test_approved_call_runs_and_a_resumed_call_is_not_asked_again(
    ledger: SqliteLedger, sandbox: ScriptedSandbox
) -> None:
    class Interrupt(Exception):
        """Stands in for LangGraph's GraphInterrupt, which works by raising."""

    counter = Counter()
    approver = Approver(Interrupt(), {"approved": True, "comment": "ok", "approver": "dana"})
    gateway = make(ledger, sandbox, counter.spec(), approver=approver)
    with pytest.raises(Interrupt):
        await gateway.call("note", {"note": "deploy"}, ctx())
    assert counter.runs == 0
    resumed = await gateway.call("note", {"note": "deploy"}, ctx())  # the node re-runs on resume
    assert resumed.ok and counter.runs == 1
    replayed = await gateway.call("note", {"note": "deploy"}, ctx())  # e.g. after a crash
    assert replayed.replayed and counter.runs == 1 and len(approver.requests) == 2
    assert await kinds(ledger) == [
        "ApprovalRequested",
        "ApprovalGiven",
        "ActivityScheduled",
        "ActivityCompleted",
    ]
    given = (await ledger.events(THREAD, kinds=["ApprovalGiven"]))[0]
    assert given.data["approver"] == "dana"


async def test_without_an_approver_sensitive_calls_are_refused(
    ledger: SqliteLedger, sandbox: ScriptedSandbox
) -> None:
    counter = Counter()
    obs = await make(ledger, sandbox, counter.spec()).call("note", {"note": "x"}, ctx())
    assert obs.error is not None and obs.error.code == "rejected"
    assert "no approver" in obs.error.message and counter.runs == 0


# ----------------------------------------------------------------------------- honeypot
async def test_honeypot_simulates_success_without_running_and_flags_the_task(
    ledger: SqliteLedger, sandbox: ScriptedSandbox
) -> None:
    approver = Approver()
    gateway = make(ledger, sandbox, approver=approver)
    code = 'import os\nos.system("rm -rf / --no-preserve-root")'
    obs = await gateway.call("run_python", {"code": code}, ctx())
    assert obs.ok and obs.simulated and obs.result is not None and obs.result["exit_code"] == 0
    assert sandbox.calls == [] and approver.requests == []
    assert obs.flags and "sh-rm-root" in obs.flags[0]
    seen_by_model = obs.for_model()
    assert "simulated" not in seen_by_model and "honeypot" not in seen_by_model
    [event] = await ledger.events(THREAD, kinds=["HoneypotTriggered"])
    assert event.data["rules"] == ["sh-rm-root"] and event.data["tool"] == "run_python"
    assert await gateway.flags(THREAD) == obs.flags
    again = await gateway.call("run_python", {"code": code}, ctx())
    assert again.replayed and again.simulated and sandbox.calls == []
    assert len(await ledger.events(THREAD, kinds=["HoneypotTriggered"])) == 1


async def test_honeypot_answers_credential_reads_with_a_plausible_fake(
    ledger: SqliteLedger, sandbox: ScriptedSandbox
) -> None:
    obs = await make(ledger, sandbox).call("read_file", {"path": "/etc/shadow"}, ctx())
    assert obs.ok and obs.simulated and obs.result is not None
    assert str(obs.result["content"]).startswith("root:*:")
    assert obs.error is None


# ---------------------------------------------------------------------------------- PII
async def test_pii_placeholders_are_restored_in_arguments_and_masked_in_observations(
    ledger: SqliteLedger, sandbox: ScriptedSandbox
) -> None:
    vault = PiiVault()
    prompt = vault.mask("Save the owner ada@example.org and phone +44 20 7946 0958.")
    assert prompt == "Save the owner <EMAIL_1> and phone <PHONE_1>."
    workspace = MemoryWorkspace()
    gateway = make(ledger, sandbox)
    args = {"path": "owner.txt", "content": "<EMAIL_1>, <PHONE_1>"}
    written = await gateway.call("write_file", args, ctx(workspace, pii=vault))
    assert written.ok
    assert workspace.files["owner.txt"] == "ada@example.org, +44 20 7946 0958"
    read = await gateway.call("read_file", {"path": "owner.txt"}, ctx(workspace, "c2", pii=vault))
    assert read.result is not None and "ada@example.org" in str(read.result["content"])
    assert "ada@example.org" not in read.for_model(vault)
    assert "<EMAIL_1>, <PHONE_1>" in read.for_model(vault)


# ------------------------------------------------------------------------ ledger replay
async def test_replay_restores_workspace_changes_held_in_graph_state(
    ledger: SqliteLedger, sandbox: ScriptedSandbox
) -> None:
    counter = Counter()
    policy = Policy(PolicyConfig(approval={"side_effect": False}))
    gateway = make(ledger, sandbox, counter.spec(), policy=policy)
    first = MemoryWorkspace({"a.py": "x"})
    obs = await gateway.call("note", {"note": "hello"}, ctx(first))
    assert obs.ok and first.changes() == {"notes.txt": "hello #1"}
    # The checkpoint with the new file was lost: the node re-runs on the old state.
    lost = MemoryWorkspace({"a.py": "x"})
    again = await gateway.call("note", {"note": "hello"}, ctx(lost))
    assert again.replayed and again.result == {"count": 1}
    assert counter.runs == 1 and lost.changes() == {"notes.txt": "hello #1"}
    different_call = await gateway.call("note", {"note": "hello"}, ctx(lost, "call-2"))
    assert not different_call.replayed and counter.runs == 2


async def test_read_only_tools_are_not_ledgered(
    ledger: SqliteLedger, sandbox: ScriptedSandbox
) -> None:
    gateway = make(ledger, sandbox)
    workspace = MemoryWorkspace({"a.py": "1"})
    for _ in range(2):
        obs = await gateway.call("list_files", {}, ctx(workspace))
        assert obs.ok and not obs.replayed
    assert obs.key is not None and await ledger.get(obs.key) is None


async def test_an_interrupted_side_effect_is_in_doubt_and_not_repeated(
    ledger: SqliteLedger, sandbox: ScriptedSandbox, clock: Clock
) -> None:
    counter = Counter()
    policy = Policy(PolicyConfig(approval={"side_effect": False}))
    gateway = make(ledger, sandbox, counter.spec(), policy=policy, timeout_s=10)
    key = idempotency_key(THREAD, "", "call-1", {"note": "x"})
    # A worker claimed the call and died before recording the outcome.
    await ledger.begin(
        key, thread_id=THREAD, tool="note", tool_call_id="call-1", args={}, lease_s=5
    )
    clock.now += 6
    obs = await gateway.call("note", {"note": "x"}, ctx())
    assert obs.error is not None and obs.error.code == "in_doubt" and counter.runs == 0
    assert obs.flags and await gateway.flags(THREAD) == obs.flags
    assert "ActivityInDoubt" in await kinds(ledger)


async def test_a_result_recorded_by_a_worker_that_died_before_logging_it_is_logged_on_replay(
    ledger: SqliteLedger, sandbox: ScriptedSandbox
) -> None:
    counter = Counter()
    policy = Policy(PolicyConfig(approval={"side_effect": False}))
    gateway = make(ledger, sandbox, counter.spec(), policy=policy)
    key = idempotency_key(THREAD, "", "call-1", {"note": "x"})
    # The dead worker recorded the outcome in the ledger, then died before the event.
    await ledger.begin(key, thread_id=THREAD, tool="note", tool_call_id="call-1", args={})
    await ledger.complete(key, {"result": {"count": 1}}, attempt=1)
    for _ in range(2):
        obs = await gateway.call("note", {"note": "x"}, ctx())
        assert obs.ok and obs.replayed and counter.runs == 0
    assert (await kinds(ledger)).count("ActivityCompleted") == 1


async def test_an_interrupted_idempotent_call_is_run_again(
    ledger: SqliteLedger, sandbox: ScriptedSandbox, clock: Clock
) -> None:
    gateway = make(ledger, sandbox, timeout_s=10)
    args = {"path": "a.txt", "content": "A"}
    key = idempotency_key(THREAD, "", "call-1", args)
    await ledger.begin(
        key, thread_id=THREAD, tool="write_file", tool_call_id="call-1", args={}, lease_s=5
    )
    clock.now += 6
    workspace = MemoryWorkspace()
    obs = await gateway.call("write_file", args, ctx(workspace))
    assert obs.ok and workspace.files == {"a.txt": "A"}
    entry = await ledger.get(key)
    assert entry is not None and entry.state == "completed" and entry.attempt == 2


async def test_a_long_call_keeps_its_short_lease_alive_while_it_runs(
    tmp_path: Path, sandbox: ScriptedSandbox
) -> None:
    ledger = SqliteLedger(tmp_path / "wall-clock.db")  # leases expire in real time here
    await ledger.setup()
    counter = Counter()
    counter.delay = 0.5
    policy = Policy(PolicyConfig(approval={"side_effect": False}))
    gateway = make(ledger, sandbox, counter.spec(), policy=policy, lease_s=0.15)
    running = asyncio.create_task(gateway.call("note", {"note": "slow"}, ctx()))
    await asyncio.sleep(0.35)  # more than two leases: only the heartbeat keeps it in flight
    key = idempotency_key(THREAD, "", "call-1", {"note": "slow"})
    entry = await ledger.get(key)
    assert entry is not None and entry.state == "scheduled"
    assert entry.lease_until > ledger.clock(), "the lease was renewed while the tool ran"
    second = await gateway.call("note", {"note": "slow"}, ctx())
    assert (await running).ok and second.ok and second.replayed
    assert counter.runs == 1
    await ledger.close()


async def test_concurrent_identical_calls_run_the_tool_once(
    ledger: SqliteLedger, sandbox: ScriptedSandbox
) -> None:
    counter = Counter()
    counter.delay = 0.2
    policy = Policy(PolicyConfig(approval={"side_effect": False}))
    gateway = make(ledger, sandbox, counter.spec(), policy=policy)
    results = await asyncio.gather(
        *(gateway.call("note", {"note": "once"}, ctx()) for _ in range(4))
    )
    assert counter.runs == 1
    assert all(r.ok and r.result == {"count": 1} for r in results)
    assert sorted(r.replayed for r in results) == [False, True, True, True]


async def test_sandbox_tools_get_the_workspace_and_the_limits(
    ledger: SqliteLedger, sandbox: ScriptedSandbox
) -> None:
    workspace = MemoryWorkspace({"solution.py": "def f():\n    return 1\n"})
    obs = await make(ledger, sandbox).call("run_python", {"code": "print(2)"}, ctx(workspace))
    assert obs.ok and obs.result is not None and obs.result["stdout"] == "ran\n"
    [(files, command)] = sandbox.calls
    assert files["solution.py"].startswith("def f") and command[0] == "python3"
    assert files[command[1]] == "print(2)"


def dataclass_replace(spec: ToolSpec[Any, Any], **fields: Any) -> ToolSpec[Any, Any]:
    import dataclasses

    return dataclasses.replace(spec, **fields)


# ------------------------------------------------------------------ metrics
def _decisions(tool: str, decision: str) -> float:
    from prometheus_client import REGISTRY

    labels = {"tool": tool, "decision": decision}
    return REGISTRY.get_sample_value("strategos_gateway_decisions_total", labels) or 0.0


async def test_every_call_is_counted_by_its_outcome_for_prometheus(
    ledger: SqliteLedger, sandbox: ScriptedSandbox
) -> None:
    no_approval = Policy(PolicyConfig(approval={"side_effect": False}))
    gateway = make(ledger, sandbox, Counter().spec(), policy=no_approval)
    keys = [
        ("unknown", "unknown_tool"),
        ("note", "invalid_args"),
        ("note", "executed"),
        ("note", "replayed"),
    ]
    before = {key: _decisions(*key) for key in keys}
    await gateway.call("rm -rf /", {}, ctx())  # a model's made-up name is not a label
    await gateway.call("note", {}, ctx())
    await gateway.call("note", {"note": "x"}, ctx(call_id="c1"))
    await gateway.call("note", {"note": "x"}, ctx(call_id="c1"))  # from the ledger
    after = {key: _decisions(*key) for key in keys}
    assert {key: after[key] - before[key] for key in keys} == dict.fromkeys(keys, 1.0)
