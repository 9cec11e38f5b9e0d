"""Sandbox-backed tools through the gateway with the real bubblewrap sandbox and both ledgers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jsonschema_rs
import pytest

from tools.builtin import default_registry
from tools.gateway import ApprovalDecision, ApprovalRequest, CallContext, ToolGateway
from tools.ledger import Ledger
from tools.policy import Policy, PolicyConfig
from tools.registry import ToolSpec
from tools.sandbox import LocalSandbox, SandboxLimits, SandboxResult
from tools.workspaces import MemoryWorkspace

REGISTRY = default_registry()
SANDBOX_EXAMPLES = [
    (spec, example) for spec in REGISTRY.list() if spec.needs_sandbox for example in spec.examples
]


class CountingSandbox:
    """The real local sandbox, counting how often code actually ran."""

    def __init__(self) -> None:
        self.inner = LocalSandbox()
        self.runs = 0

    async def run(
        self, files: Mapping[str, str], command: Sequence[str], limits: SandboxLimits | None = None
    ) -> SandboxResult:
        self.runs += 1
        return await self.inner.run(files, command, limits)

    async def run_python(
        self, files: Mapping[str, str], entry: str, limits: SandboxLimits | None = None
    ) -> SandboxResult:
        self.runs += 1
        return await self.inner.run_python(files, entry, limits)


@pytest.fixture(scope="module")
def sandbox() -> CountingSandbox:
    return CountingSandbox()


def ids(item: Any) -> str:
    return item.name if isinstance(item, ToolSpec) else str(getattr(item, "title", item))


@pytest.mark.parametrize(("spec", "example"), SANDBOX_EXAMPLES, ids=ids)
async def test_sandbox_tool_examples_run_through_the_gateway(
    spec: ToolSpec[Any, Any], example: Any, ledger: Ledger, sandbox: CountingSandbox
) -> None:
    gateway = ToolGateway(REGISTRY, ledger, sandbox=sandbox)
    workspace = MemoryWorkspace(example.files)
    ctx = CallContext(
        thread_id="t", tool_call_id=f"{spec.name}-{example.title}", workspace=workspace
    )
    before = sandbox.runs
    obs = await gateway.call(spec.name, example.args.model_dump(mode="json"), ctx)
    assert obs.ok, obs.error
    assert obs.result is not None
    jsonschema_rs.validate(spec.result_schema(), obs.result)
    assert example.expect(spec.result_model.model_validate(obs.result)), obs.result
    if example.result is not None:  # the documented result is what the tool really returns
        documented = example.result.model_dump(mode="json")
        assert {k: v for k, v in obs.result.items() if k != "duration_s"} == {
            k: v for k, v in documented.items() if k != "duration_s"
        }
    replay = await gateway.call(spec.name, example.args.model_dump(mode="json"), ctx)
    assert replay.replayed and replay.result == obs.result
    assert sandbox.runs == before + 1


async def test_full_flow_events_on_each_backend(ledger: Ledger, sandbox: CountingSandbox) -> None:
    asked: list[ApprovalRequest] = []

    async def approver(request: ApprovalRequest) -> ApprovalDecision:
        asked.append(request)
        return ApprovalDecision(approved=True, comment="fine", approver="ops")

    policy = Policy(
        PolicyConfig.model_validate({"tools": {"run_python": {"require_approval": True}}})
    )
    gateway = ToolGateway(REGISTRY, ledger, policy, sandbox, approver)
    workspace = MemoryWorkspace({"solution.py": "def double(x):\n    return 2 * x\n"})

    def ctx(call: str) -> CallContext:
        return CallContext(thread_id="flow", tool_call_id=call, workspace=workspace)

    await ledger.append_event("flow", "WorkflowStarted", {"goal": "double"})
    ran = await gateway.call(
        "run_python", {"code": "from solution import double\nprint(double(21))"}, ctx("c1")
    )
    assert ran.ok and ran.result is not None and ran.result["stdout"] == "42\n" and len(asked) == 1
    runs = sandbox.runs
    bait = await gateway.call("run_python", {"code": "import os\nprint(os.environ)"}, ctx("c2"))
    assert bait.ok and bait.simulated and sandbox.runs == runs and len(asked) == 1
    bad = await gateway.call("run_python", {"code": 42}, ctx("c3"))
    assert bad.error is not None and bad.error.code == "invalid_args"
    events = await ledger.events("flow")
    assert [e.kind for e in events] == [
        "WorkflowStarted",
        "ApprovalRequested",
        "ApprovalGiven",
        "ActivityScheduled",
        "ActivityCompleted",
        "HoneypotTriggered",
        "ToolCallInvalid",
    ]
    assert [e.id for e in events] == list(range(1, 8))
    assert await gateway.flags("flow") == bait.flags
