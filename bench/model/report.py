"""Markdown tables of a `bench_model.py` results document (printed, and pasted in the README).

    .venv/bin/python -m bench.model.report [bench/model/results.json]

Kept apart from the measuring code so a results file can be re-rendered without a server.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def cell(value: object) -> str:
    """A table cell: '–' for missing, thousands separators, at most two decimals."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def headline(data: Mapping[str, Any]) -> list[str]:
    """What ran, where, and how loaded the machine was."""
    m = data["machine"]
    server = data["server"]
    mode = "**quick mode: figures only show that the script runs**" if data["quick"] else "full"
    return [
        f"{data['date']}, {mode}; {m['cpu']}, nproc {m['nproc']}, {m['memory_gib']} GiB; "
        f"load average {m['load_average_before']} before, {m['load_average_after']} after; "
        f"other llama-server processes running: {m['other_llama_servers_before']}.",
        f"Server: `{' '.join(server['argv'])}` (build {server['server_reports']['build_info']}), "
        f"{data['duration_s']} s in all.",
    ]


def single(data: Mapping[str, Any]) -> list[str]:
    """Time to first token by prompt size, and one sequence's generation rate."""
    part = data["single_sequence"]
    rows = [
        (s["prompt_tokens"], s["ttft_s_median"], s["prompt_tokens_per_s"])
        for s in part["ttft_by_prompt_size"]
    ]
    tokens = data["plan"]["generation_tokens"]
    return [
        *table(
            ["prompt tokens (cache off)", "time to first token s (median)", "prompt tok/s"], rows
        ),
        "",
        f"One sequence generates **{cell(part['generation_tokens_per_s'])} tok/s** "
        f"(median over {data['plan']['repetitions']} runs of {tokens} tokens).",
    ]


def concurrent(data: Mapping[str, Any]) -> list[str]:
    """Generation rates with several sequences at once."""
    rows = [
        (
            level["sequences"],
            level["aggregate_tokens_per_s"],
            level["per_sequence_tokens_per_s"],
            level["wall_s_median"],
        )
        for level in data["concurrency"]["levels"]
    ]
    header = ["sequences at once", "aggregate gen tok/s", "per-sequence gen tok/s", "batch wall s"]
    return table(header, rows)


def prefix(data: Mapping[str, Any]) -> list[str]:
    """Prompt tokens the server evaluated against those sent, with a shared prefix."""
    part = data["prefix_reuse"]
    seq = part["consecutive"]
    rounds = part["concurrent"]["rounds"]
    n_warm = len(seq["requests"]) - 1
    rows: list[Sequence[object]] = [
        ("consecutive, first (cold)", 1, seq["cold"]["sent_tokens"],
         seq["cold"]["evaluated_tokens"], seq["cold"]["wall_s"]),
        (f"consecutive, next {n_warm} (mean wall)", n_warm, seq["warm"]["sent_tokens"],
         seq["warm"]["evaluated_tokens"], seq["warm"]["wall_s_mean"]),
    ]  # fmt: skip
    for r in rounds:
        rows.append(
            (f"concurrent, {r['round']} round", len(r["requests"]), r["sent_tokens"],
             r["evaluated_tokens"], r["wall_s"])
        )  # fmt: skip
    header = ["requests (prefix + tail)", "requests", "tokens sent", "tokens evaluated", "wall s"]
    return [
        f"Prefix {part['prefix_tokens']} tokens, tails {part['tail_tokens']} tokens, "
        "`cache_prompt: true`.",
        "",
        *table(header, rows),
        "",
        f"Wall time saved: {cell(seq['wall_saved_s_per_request'])} s per consecutive request, "
        f"{cell(part['concurrent']['wall_saved_s'])} s for the warm concurrent round.",
    ]


def speculative(data: Mapping[str, Any]) -> list[str]:
    """Repair-like requests per speculative type."""
    part = data["speculative"]
    rows = [
        (
            f"`{row['spec_type']}`",
            row["wall_s"],
            row["generated_tokens"],
            row["generation_tokens_per_s"],
            row["draft_tokens"],
            row["accepted_tokens"],
            row["acceptance"],
            row["speedup_vs_none"],
            row["same_output_as_none"],
        )
        for row in part["types"]
    ]
    header = [
        "--spec-type", "wall s", "tokens", "gen tok/s", "drafted", "accepted", "acceptance",
        "speed-up (wall)", "same output as none",
    ]  # fmt: skip
    return [
        f"Cases {', '.join(part['cases'])} ({part['code_lines']} lines of code), "
        f"{part['repetitions']} run(s) each, greedy, at most {part['max_tokens']} tokens; "
        "wall s is the sum over the requests (prompt included).",
        "",
        *table(header, rows),
        "",
        f"Fastest here: **`{part['fastest']}`**.",
    ]


def markdown(data: Mapping[str, Any]) -> str:
    """Every table of a results document."""
    sections = [
        headline(data),
        ["### One sequence", "", *single(data)],
        ["### Sequences at once (`--parallel 4`)", "", *concurrent(data)],
        ["### Prefix reuse", "", *prefix(data)],
        ["### Draft-free speculative decoding on a repair-like request", "", *speculative(data)],
    ]
    return "\n\n".join("\n".join(lines) for lines in sections)


if __name__ == "__main__":
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("results.json")
    print(markdown(json.loads(source.read_text())))
