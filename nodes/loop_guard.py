"""Circuit breaker for agent loops: is the agent repeating itself, and what to do about it.

An agent that calls the same tool with the same arguments and gets the same answer learns
nothing new; one that keeps failing the same call, or thinks without acting, or ping-pongs
between two calls, is spending the budget on a loop. These patterns are the ones OpenHands' stuck
detector checks (exact, by comparing action + observation), plus a semantic one: the last
thoughts say the same thing in other words (mean pairwise cosine of their embeddings).

A tripped pattern first sends the agent back (`backtrack`: the caller drops the turns since the
last backtrack from its short-term memory and asks for a different strategy); if a pattern trips
again after `max_backtracks` backtracks the verdict is `stop`, with a reason a user can read.
Everything here is a pure function of the turns; the only I/O is the optional similarity callable.

`judge_turns` looks only at the turns it is given: pass the window since the last backtrack
(the turns the agent still has in context). A caller that keeps the whole history slices it,
`turns[since_backtrack:]`, before calling.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Literal

from memory.embeddings import Embedder, cosine

__all__ = [
    "PATTERNS",
    "GuardConfig",
    "Pattern",
    "Similarity",
    "Turn",
    "Verdict",
    "action_key",
    "judge_turns",
    "make_similarity",
    "turn_digest",
]

Pattern = Literal["repeat", "error_repeat", "monologue", "ping_pong", "semantic"]
PATTERNS: tuple[Pattern, ...] = ("repeat", "error_repeat", "monologue", "ping_pong", "semantic")
Similarity = Callable[[Sequence[str]], float]


@dataclass(frozen=True)
class Turn:
    """One step of an agent: what it thought, which call it made, what came back.

    `action` is `action_key(tool, args)`, or `""` when the reply called no tool (a monologue
    turn: nothing in the world changed).
    """

    thought: str
    action: str
    observation: str
    error: bool = False


@dataclass(frozen=True)
class GuardConfig:
    """Thresholds, each the number of turns that make a loop (the turn that trips included).

    Defaults: `repeat=4` identical action + observation in a row (OpenHands uses 4; 3 would
    trip on an agent that re-reads a file twice to check an edit landed), `error_repeat=3` the
    same call failing three times in a row (a failing call is cheaper to call a loop on),
    `monologue=3` replies without a tool call in a row, `ping_pong=6` turns alternating between
    two action + observation pairs (three round trips), `semantic=3` last thoughts whose mean
    pairwise cosine is at least `semantic_threshold` (0.95: strict, paraphrases only).
    `max_backtracks=1`: one second chance, then stop. An exact loop is stopped within
    `bound(pattern)` looping turns; a paraphrase loop only once three thoughts in a row reach
    the threshold (bench/runaway_loops: mixed prefixes took up to 15 turns at 0.95, 6 at 0.925,
    where an edit-then-test agent making progress peaked at 0.917).

    `semantic_needs_repeated_call`: the semantic pattern also needs a call made twice (or two
    replies without one) among those turns. e5 rates "Let me read cart.py." / "… pricing.py." /
    "… tax.py." at 0.956: an agent exploring with templated thoughts is not looping.
    """

    repeat: int = 4
    error_repeat: int = 3
    monologue: int = 3
    ping_pong: int = 6
    semantic: int = 3
    semantic_threshold: float = 0.95
    max_backtracks: int = 1
    semantic_needs_repeated_call: bool = True

    def __post_init__(self) -> None:
        for name in ("repeat", "error_repeat", "monologue", "semantic"):
            if getattr(self, name) < 2:
                raise ValueError(f"GuardConfig.{name} must be at least 2 turns")
        if self.ping_pong < 4 or self.ping_pong % 2:
            raise ValueError("GuardConfig.ping_pong must be an even number of turns, at least 4")
        if not 0.0 < self.semantic_threshold <= 1.0:
            raise ValueError("GuardConfig.semantic_threshold must be in (0, 1]")
        if self.max_backtracks < 0:
            raise ValueError("GuardConfig.max_backtracks must not be negative")

    def threshold(self, pattern: Pattern) -> int:
        """Turns in one window that trip `pattern`."""
        return int(getattr(self, pattern))

    def bound(self, pattern: Pattern) -> int:
        """Looping turns after which a pure loop of `pattern` is stopped, every time."""
        return self.threshold(pattern) * (self.max_backtracks + 1)


@dataclass(frozen=True)
class Verdict:
    """What the guard says after a turn: carry on, go back and try otherwise, or stop."""

    state: Literal["ok", "backtrack", "stop"]
    pattern: str | None
    reason: str


OK = Verdict("ok", None, "")


def action_key(tool: str, args: Mapping[str, object]) -> str:
    """The canonical text of a call: equal calls give equal keys whatever the argument order."""
    return f"{tool} {json.dumps(dict(args), sort_keys=True, ensure_ascii=False, default=str)}"


def turn_digest(turn: Turn) -> str:
    """Hash of action + observation: two turns with the same digest taught the agent nothing."""
    h = hashlib.blake2b(digest_size=16)
    for part in (turn.action, "\x00", turn.observation):
        h.update(part.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def _tail(turns: Sequence[Turn], n: int) -> Sequence[Turn] | None:
    return turns[-n:] if len(turns) >= n else None


def _repeat(turns: Sequence[Turn], n: int) -> bool:
    tail = _tail(turns, n)
    return tail is not None and tail[0].action != "" and len({turn_digest(t) for t in tail}) == 1


def _error_repeat(turns: Sequence[Turn], n: int) -> bool:
    tail = _tail(turns, n)
    return (
        tail is not None
        and tail[0].action != ""
        and all(t.error for t in tail)
        and len({t.action for t in tail}) == 1
    )


def _monologue(turns: Sequence[Turn], n: int) -> bool:
    tail = _tail(turns, n)
    return tail is not None and all(t.action == "" for t in tail)


def _ping_pong(turns: Sequence[Turn], n: int) -> bool:
    tail = _tail(turns, n)
    if tail is None or any(t.action == "" for t in tail):
        return False
    digests = [turn_digest(t) for t in tail]
    evens, odds = set(digests[0::2]), set(digests[1::2])
    return len(evens) == 1 and len(odds) == 1 and evens != odds


def _semantic(turns: Sequence[Turn], config: GuardConfig, similarity: Similarity) -> bool:
    tail = _tail(turns, config.semantic)
    if tail is None or any(not t.thought.strip() for t in tail):
        return False
    if config.semantic_needs_repeated_call and len({t.action for t in tail}) == len(tail):
        return False
    return similarity([t.thought for t in tail]) >= config.semantic_threshold


_REASONS: dict[Pattern, str] = {
    "repeat": "repeated the same call {n} times with the same result",
    "error_repeat": "made the same call {n} times and it failed every time",
    "monologue": "replied {n} times in a row without calling a tool",
    "ping_pong": "alternated between the same two calls and results for {n} turns",
    "semantic": "said the same thing in other words {n} times in a row",
}


def _tripped(
    turns: Sequence[Turn], config: GuardConfig, similarity: Similarity | None
) -> Pattern | None:
    """The first pattern the window ends in, cheapest checks first (similarity embeds)."""
    if _error_repeat(turns, config.error_repeat):
        return "error_repeat"
    if _repeat(turns, config.repeat):
        return "repeat"
    if _monologue(turns, config.monologue):
        return "monologue"
    if _ping_pong(turns, config.ping_pong):
        return "ping_pong"
    if similarity is not None and _semantic(turns, config, similarity):
        return "semantic"
    return None


def judge_turns(
    turns: Sequence[Turn],
    *,
    backtracks: int,
    config: GuardConfig = GuardConfig(),  # noqa: B008 - frozen, so a shared default is safe
    similarity: Similarity | None = None,
) -> Verdict:
    """Judge the window of turns since the last backtrack, after its newest turn.

    `backtracks` is how many times this agent was already sent back. Patterns are judged on the
    newest turns, so the caller must clear its window on a backtrack (else the next turn trips
    the same loop again).
    `similarity` (mean pairwise cosine, see `make_similarity`) enables the semantic pattern; it
    is called at most once per judgement, and only when the last thoughts are all non-empty.
    """
    if backtracks < 0:
        raise ValueError("backtracks must not be negative")
    pattern = _tripped(turns, config, similarity)
    if pattern is None:
        return OK
    what = _REASONS[pattern].format(n=config.threshold(pattern))
    if backtracks < config.max_backtracks:
        return Verdict("backtrack", pattern, what)
    if backtracks == 0:
        return Verdict("stop", pattern, f"stopped: {what} (no backtracks allowed)")
    after = "a backtrack" if backtracks == 1 else f"{backtracks} backtracks"
    return Verdict("stop", pattern, f"stopped: {what}, again after {after}")


def make_similarity(embedder: Embedder, *, cache_size: int = 256) -> Similarity:
    """Mean pairwise cosine of the texts' embeddings, caching each text's vector.

    A loop judged after every turn re-reads the same last thoughts, so each new thought is
    embedded once (about one short e5 forward pass per turn). Texts are embedded on the query
    side: E5 uses the `query:` prefix for symmetric similarity. One callable may serve several
    workers' threads at once, so the cache is locked (the embedder serialises its calls anyway).
    """
    cache: OrderedDict[str, list[float]] = OrderedDict()
    lock = threading.Lock()

    def similarity(texts: Sequence[str]) -> float:
        with lock:
            missing = list(dict.fromkeys(t for t in texts if t not in cache))
            vectors = embedder.embed_query(missing) if missing else []
            cache.update(zip(missing, vectors, strict=True))
            for text in texts:
                cache.move_to_end(text)
            while len(cache) > max(cache_size, len(texts)):
                cache.popitem(last=False)
            pairs = list(combinations([cache[t] for t in texts], 2))
        if not pairs:
            return 1.0
        return sum(cosine(a, b) for a, b in pairs) / len(pairs)

    return similarity
