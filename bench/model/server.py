"""The server under test and timed requests to it, for `bench_model.py`.

The server is started by the project's own `service.llm.local_model.running_server` (same
binary, model, threads, context and loopback port choice as the team gets), so the figures are
the floor the team runs on, not those of a hand-tuned server. The only thing the benchmark
changes is the speculative decoding type, and `running_server` takes no extra flags: llama.cpp
reads every option also from an `LLAMA_ARG_*` environment variable when the command line does
not give it (`--spec-type` is `LLAMA_ARG_SPEC_TYPE`, see `llama-server --help`), so the variable
is set only while the server process is spawned. The server's own `/props` and `/slots` are
recorded next to the flags, so the JSON shows what the server says it runs with, not only what
we asked for.

Every request goes to the native `/completion` endpoint with `stream: true`: the client sees
the first token when it arrives (time to first token), and the last event carries the server's
`timings` (prompt_n, prompt_ms, predicted_n, predicted_ms, cache_n and, with speculative
decoding, draft_n and draft_n_accepted) and `tokens_cached`.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from service.llm.local_model import prepare, running_server, server_path, weights_path
from service.settings import Settings

SPEC_ENV = "LLAMA_ARG_SPEC_TYPE"
"""llama.cpp's environment twin of `--spec-type` (listed in `llama-server --help`)."""

REQUEST_TIMEOUT_S = 1800.0
"""A loaded 2-core machine can take minutes for one long request; never cut a measurement."""


@dataclass(frozen=True)
class Server:
    """A running server: its base URL and the flags it was started with."""

    base: str
    flags: dict[str, Any]


def spec_types(binary: Path) -> list[str]:
    """The draft-free (`ngram-*`) speculative types this build's `--help` lists."""
    text = subprocess.run(
        [str(binary), "--help"], capture_output=True, text=True, timeout=60, check=False
    ).stdout
    match = re.search(r"--spec-type\s+(\S+)", text)
    if match is None:
        return []
    return [name for name in match.group(1).split(",") if name.startswith("ngram-")]


def binary(settings: Settings) -> Path:
    """The cached `llama-server` (built on first use by the project's `prepare`)."""
    path = server_path(settings)
    return path if path.exists() else prepare(settings).server


def other_model_servers() -> int:
    """How many `llama-server` processes run already: other jobs sharing the cores."""
    count = 0
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            count += comm.read_text().strip() == "llama-server"
        except OSError:
            continue
    return count


@contextmanager
def bench_server(settings: Settings, spec_type: str = "none") -> Iterator[Server]:
    """Start the project's server (with `spec_type`), yield it, stop it on exit."""
    saved = os.environ.get(SPEC_ENV)
    with ExitStack() as stack:
        os.environ[SPEC_ENV] = spec_type
        try:
            url = stack.enter_context(running_server(settings))
        finally:  # the child has read its environment by now; the caller's stays untouched
            if saved is None:
                os.environ.pop(SPEC_ENV, None)
            else:
                os.environ[SPEC_ENV] = saved
        base = url.removesuffix("/v1")
        props = httpx.get(f"{base}/props", timeout=30).json()
        slots = httpx.get(f"{base}/slots", timeout=30).json()
        flags = {
            # Relative to the cache dir: where a machine keeps its cache is not a result.
            "binary": str(server_path(settings).relative_to(settings.cache_dir)),
            "model": weights_path(settings).name,
            # As `running_server` builds the command line (`-c` covers every slot).
            "argv": [
                "--jinja",
                "-c",
                str(settings.llama_context * settings.llama_parallel),
                "-t",
                str(settings.llama_threads),
                "--parallel",
                str(settings.llama_parallel),
                "--no-webui",
            ],
            "env": {SPEC_ENV: spec_type},
            "server_reports": {
                "build_info": props.get("build_info"),
                "total_slots": props.get("total_slots"),
                "n_ctx_per_slot": props.get("default_generation_settings", {}).get("n_ctx"),
                "speculative_slots": sum(bool(slot.get("speculative")) for slot in slots),
            },
        }
        yield Server(base=base, flags=flags)


def client_for_bench() -> httpx.AsyncClient:
    """An HTTP client that opens a connection per request.

    llama-server may close a connection right after a streamed answer; a pooled client can
    reuse it before the close arrives and fail with "server disconnected". A loopback connect
    costs far less than a millisecond, well below anything measured here.
    """
    return httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=0))


@dataclass(frozen=True)
class Completion:
    """One request as the client and the server saw it (times in seconds and milliseconds)."""

    sent_tokens: int
    wall_s: float
    ttft_s: float
    prompt_n: int
    prompt_ms: float
    cache_n: int
    predicted_n: int
    predicted_ms: float
    tokens_cached: int
    draft_n: int | None
    draft_n_accepted: int | None
    content: str

    @property
    def prompt_tokens_per_s(self) -> float:
        """Prompt tokens the server evaluated per second (cached ones excluded)."""
        return 1000.0 * self.prompt_n / self.prompt_ms if self.prompt_ms > 0 else 0.0

    @property
    def generation_tokens_per_s(self) -> float:
        """Generated tokens per second of this sequence's decoding time, per the server."""
        return 1000.0 * self.predicted_n / self.predicted_ms if self.predicted_ms > 0 else 0.0

    def row(self) -> dict[str, Any]:
        """The JSON row (without the generated text, which only the repair part compares)."""
        return {
            "sent_tokens": self.sent_tokens,
            "wall_s": round(self.wall_s, 3),
            "ttft_s": round(self.ttft_s, 3),
            "prompt_n": self.prompt_n,
            "prompt_ms": round(self.prompt_ms, 1),
            "cache_n": self.cache_n,
            "tokens_cached": self.tokens_cached,
            "predicted_n": self.predicted_n,
            "predicted_ms": round(self.predicted_ms, 1),
            "prompt_tokens_per_s": round(self.prompt_tokens_per_s, 2),
            # One token comes out of the prompt's batch: no decoding rate to speak of.
            "generation_tokens_per_s": (
                round(self.generation_tokens_per_s, 2) if self.predicted_n > 1 else None
            ),
            "draft_n": self.draft_n,
            "draft_n_accepted": self.draft_n_accepted,
        }


async def complete(
    client: httpx.AsyncClient,
    base: str,
    prompt: Sequence[int] | str,
    *,
    n_predict: int,
    cache_prompt: bool,
    ignore_eos: bool = True,
    sent_tokens: int | None = None,
) -> Completion:
    """One greedy `/completion` request, streamed; `ignore_eos` fixes the output length."""
    body = {
        "prompt": prompt if isinstance(prompt, str) else list(prompt),
        "n_predict": n_predict,
        "cache_prompt": cache_prompt,
        "ignore_eos": ignore_eos,
        "temperature": 0.0,
        "seed": 0,
        "stream": True,
    }
    start = time.perf_counter()
    first: float | None = None
    final: dict[str, Any] = {}
    parts: list[str] = []
    async with client.stream(
        "POST", f"{base}/completion", json=body, timeout=REQUEST_TIMEOUT_S
    ) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            event = json.loads(line[len("data: ") :])
            if first is None:
                first = time.perf_counter()
            parts.append(str(event.get("content", "")))
            if event.get("stop"):
                final = event
    end = time.perf_counter()
    if "timings" not in final:
        raise RuntimeError(f"llama-server sent no final event with timings: {final!r}")
    timings = final["timings"]
    return Completion(
        sent_tokens=sent_tokens if sent_tokens is not None else int(final["tokens_evaluated"]),
        wall_s=end - start,
        ttft_s=(first or end) - start,
        prompt_n=int(timings["prompt_n"]),
        prompt_ms=float(timings["prompt_ms"]),
        cache_n=int(timings.get("cache_n", 0)),
        predicted_n=int(timings["predicted_n"]),
        predicted_ms=float(timings["predicted_ms"]),
        tokens_cached=int(final.get("tokens_cached", 0)),
        draft_n=timings.get("draft_n"),
        draft_n_accepted=timings.get("draft_n_accepted"),
        content="".join(parts),
    )


@dataclass
class Run:
    """One server's client and a source of prompt seeds no other request of the run uses."""

    client: httpx.AsyncClient
    base: str
    seeds: Iterator[int]

    async def prompt(self, tokens: int) -> list[int]:
        """A prompt of exactly `tokens` tokens that shares nothing with the run's others."""
        return await filler(self.client, self.base, tokens, next(self.seeds))


def rate(tokens: float, seconds: float) -> float:
    """Tokens per second, 0 for an empty interval."""
    return tokens / seconds if seconds > 0 else 0.0


async def timed_batch(
    run: Run, prompts: Sequence[Sequence[int]], n_predict: int, cache_prompt: bool
) -> tuple[list[Completion], float, float]:
    """Send all `prompts` at once; the answers, the batch's wall time and its decode window.

    The decode window runs from the first token of any sequence to the end of the last one:
    the requests arrive together, so their prompts share the first batches and the window is
    (nearly) pure generation.
    """
    start = time.perf_counter()
    done = await asyncio.gather(
        *(
            complete(run.client, run.base, p, n_predict=n_predict, cache_prompt=cache_prompt)
            for p in prompts
        )
    )
    first = min(c.ttft_s for c in done)
    last = max(c.wall_s for c in done)
    return list(done), time.perf_counter() - start, last - first


async def warm_up(run: Run) -> None:
    """One untimed request, so no part pays for first-touch costs of a fresh server."""
    await complete(run.client, run.base, await run.prompt(16), n_predict=2, cache_prompt=False)


_WORDS = (
    "total count index value items result buffer offset name path limit score weight token "
    "record entry width height left right start end node edge graph queue stack cache key"
).split()


def _filler_text(seed: int, lines: int) -> str:
    """Plausible Python-like lines, different for every seed (a simple LCG, no `random`).

    The first token already depends on the seed (consecutive seeds start with different
    words), so two prompts share no prefix by accident and a tail appended to a shared prefix
    starts a new branch at its first token: the server cannot reuse any of it.
    """
    state = seed * 2654435761 + 1
    out: list[str] = []
    for line in range(lines):
        picks = []
        for _ in range(3):
            state = (state * 6364136223846793005 + 1442695040888963407) % 2**64
            picks.append(_WORDS[(state >> 33) % len(_WORDS)])
        a, b, c = picks
        out.append(f"{a}_{line} = {b}[{(state >> 20) % 997}] + {c}_{seed % 89} * {line}\n")
    return f"{_WORDS[seed % len(_WORDS)]}_{seed} = []\n" + "".join(out)


async def filler(client: httpx.AsyncClient, base: str, tokens: int, seed: int) -> list[int]:
    """Exactly `tokens` prompt tokens of text unique to `seed` (so no two prompts share more
    than their first few tokens unless a test shares a prefix on purpose)."""
    lines = max(4, tokens // 12)
    while True:
        ids = await tokenize(client, base, _filler_text(seed, lines))
        if len(ids) >= tokens:
            return ids[:tokens]
        lines *= 2


async def tokenize(client: httpx.AsyncClient, base: str, text: str) -> list[int]:
    """The server's own tokenization (no special tokens added)."""
    response = await client.post(f"{base}/tokenize", json={"content": text}, timeout=60)
    response.raise_for_status()
    return [int(token) for token in response.json()["tokens"]]


async def chat_prompt(client: httpx.AsyncClient, base: str, messages: list[dict[str, str]]) -> str:
    """The prompt the model's chat template makes of `messages` (the server's `--jinja`)."""
    response = await client.post(f"{base}/apply-template", json={"messages": messages}, timeout=60)
    response.raise_for_status()
    return str(response.json()["prompt"])


def cpu_model() -> str:
    """The CPU's name from /proc/cpuinfo, or the platform's guess."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine(settings: Settings) -> dict[str, Any]:
    """What the figures depend on besides the model: cores, memory, load, other servers."""
    nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout
    try:
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kb = 0
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "nproc": int(nproc.strip() or 0),
        "memory_gib": round(mem_kb / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "llama_threads": settings.llama_threads,
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "other_llama_servers_before": other_model_servers(),
    }
