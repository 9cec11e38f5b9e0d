"""The yardstick for the team's orchestration cost: a raw graph of its shape, and a replay sandbox.

`build_raw_graph` is a plain LangGraph `StateGraph` with the selection team's happy path, node
for node and superstep for superstep: `prepare` fans out `1 + samples` `Send`s to `sample`, the
samples join in `judge`, then `conclude` and `deliver`, with conditional edges where the team
has them. Its nodes do nothing but return padding, sized (`Payload.matching`) so that the state
after each superstep serializes to about as many bytes as the team's does. What the team costs
beyond it is the team's own: its nodes, gateway, ledger, reducers, stream writes and the
serialization of a richer state.

`ReplaySandbox` takes the sandbox out of the measured path: the judge's `run_candidates` call
starts bubblewrap (tens of milliseconds), which is tool time, not orchestration. The first run
of each distinct request is real; later identical requests get its recorded result, so the
gateway, the ledger and result validation still run on every task. `measure` reruns the
recorded request for real, so the excluded time is reported beside the table, not hidden.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Annotated, Any

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send
from typing_extensions import TypedDict

from tools.sandbox.base import Sandbox, SandboxLimits, SandboxResult

PAD = "x"
NODES = ("prepare", "sample", "judge", "conclude", "deliver")
"""The team's nodes on its happy path, one superstep each (`sample` is the fan-out)."""


class RawState(TypedDict, total=False):
    """One channel per node; `pool` has a reducer because the samples write it in parallel."""

    goal: str
    prepared: str
    pool: Annotated[list[str], operator.add]
    verdict: str
    concluded: str
    report: str


class RawSample(TypedDict):
    """A `Send` payload like the team's `SampleTask`: the goal and a seed."""

    goal: str
    seed: int


@dataclass(frozen=True)
class Payload:
    """Characters each raw node adds to the state (`sample`: each of the parallel samples)."""

    prepare: int
    sample: int
    judge: int
    conclude: int
    deliver: int

    @classmethod
    def matching(cls, team_bytes: Sequence[int], samples: int) -> Payload:
        """Sizes that make the raw state grow step by step as the team's state did.

        `team_bytes` is the team's serialized state after its input step and after each of
        its five supersteps (`state_bytes`); the raw input carries the same goal, so the
        differences are what each node must add. A step that shrank the team's state adds
        nothing here.
        """
        if len(team_bytes) != len(NODES) + 1:
            raise ValueError(f"want {len(NODES) + 1} sizes, got {len(team_bytes)}")
        grew = [max(0, b - a) for a, b in zip(team_bytes, team_bytes[1:], strict=False)]
        return cls(
            prepare=grew[0],
            sample=grew[1] // (samples + 1),
            judge=grew[2],
            conclude=grew[3],
            deliver=grew[4],
        )

    def as_dict(self) -> dict[str, int]:
        """For the results file."""
        return asdict(self)


def state_bytes(values: Mapping[str, Any], serde: JsonPlusSerializer | None = None) -> int:
    """Bytes of a state's channel values as a checkpointer's serializer writes them."""
    serde = serde or JsonPlusSerializer()
    return sum(len(serde.dumps_typed(value)[1]) for value in values.values())


def build_raw_graph(
    samples: int, payload: Payload
) -> StateGraph[RawState, None, RawState, RawState]:
    """The team's shape with no-op nodes: the floor any LangGraph graph of that shape pays."""

    async def prepare(state: RawState) -> dict[str, Any]:
        return {"prepared": PAD * payload.prepare}

    async def sample(state: RawSample) -> dict[str, Any]:
        return {"pool": [PAD * payload.sample]}

    async def judge(state: RawState) -> dict[str, Any]:
        return {"verdict": PAD * payload.judge}

    async def conclude(state: RawState) -> dict[str, Any]:
        return {"concluded": PAD * payload.conclude}

    async def deliver(state: RawState) -> dict[str, Any]:
        return {"report": PAD * payload.deliver}

    # Routes are async like the team's: LangGraph runs a plain function in a worker thread.
    async def fan_out(state: RawState) -> list[Send]:
        return [Send("sample", {"goal": state["goal"], "seed": i}) for i in range(samples + 1)]

    async def after_judge(state: RawState) -> str:
        return "conclude"

    async def after_conclude(state: RawState) -> str:
        return "deliver"

    builder = StateGraph(RawState)
    builder.add_node("prepare", prepare)
    builder.add_node("sample", sample, input_schema=RawSample)
    builder.add_node("judge", judge)
    builder.add_node("conclude", conclude)
    builder.add_node("deliver", deliver)
    builder.add_edge(START, "prepare")
    builder.add_conditional_edges("prepare", fan_out, ["sample"])
    builder.add_edge("sample", "judge")
    builder.add_conditional_edges("judge", after_judge, ["conclude"])
    builder.add_conditional_edges("conclude", after_conclude, ["deliver"])
    builder.add_edge("deliver", END)
    return builder


def _key(
    files: Mapping[str, str], command: Sequence[str], limits: SandboxLimits | None
) -> tuple[object, ...]:
    dumped = limits.model_dump_json() if limits is not None else ""
    return (tuple(sorted(files.items())), tuple(command), dumped)


class ReplaySandbox:
    """A `Sandbox` that runs each distinct request for real once, then replays its result."""

    def __init__(self, inner: Sandbox) -> None:
        self.inner = inner
        self.recorded: dict[tuple[object, ...], SandboxResult] = {}
        self.requests: list[tuple[Mapping[str, str], str, SandboxLimits | None]] = []
        self.real_runs_s: list[float] = []
        self.replays = 0

    async def run(
        self,
        files: Mapping[str, str],
        command: Sequence[str],
        limits: SandboxLimits | None = None,
    ) -> SandboxResult:
        """Not used by the selection team's happy path; always real, never replayed."""
        return await self.inner.run(files, command, limits)

    async def run_python(
        self,
        files: Mapping[str, str],
        entry: str,
        limits: SandboxLimits | None = None,
    ) -> SandboxResult:
        """The recorded result of this very request, else a real (timed, recorded) run."""
        key = _key(files, ["python", entry], limits)
        known = self.recorded.get(key)
        if known is not None:
            self.replays += 1
            return known
        started = time.perf_counter()
        result = await self.inner.run_python(files, entry, limits)
        self.real_runs_s.append(time.perf_counter() - started)
        self.recorded[key] = result
        self.requests.append((dict(files), entry, limits))
        return result

    async def measure(self, runs: int) -> list[float]:
        """Seconds each of `runs` real reruns of the first recorded request took."""
        if not self.requests or runs <= 0:
            return []
        files, entry, limits = self.requests[0]
        durations = []
        for _ in range(runs):
            started = time.perf_counter()
            await self.inner.run_python(files, entry, limits)
            durations.append(time.perf_counter() - started)
        return durations
