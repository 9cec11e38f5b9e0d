"""The search query episodic recall is asked with, derived from a goal's text.

Pure text work, apart from the store: working memory's page-in, `EpisodicMemory.lessons` and
reflexion all ask with it, and the same goal must give the same query everywhere.
"""

from __future__ import annotations

import re

__all__ = ["recall_query"]

_FENCED = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)
_DEF = re.compile(r"^\s*(?:async\s+)?(?:def|class)\s+([A-Za-z_]\w*)", re.MULTILINE)
_BACKTICK = re.compile(r"`([^`\n]{1,60})`")
_ERROR_NAME = re.compile(r"\b([A-Z]\w*(?:Error|Exception|Warning))\b")
_IDENT = re.compile(r"\b([A-Za-z_]\w*_\w+|[a-z]+[A-Z]\w*|[A-Z][a-z0-9]+[A-Z]\w*)\b")
_CALL = re.compile(r"\b([A-Za-z_]\w*)\(")
_CODE_LINE = re.compile(
    r"^\s*(?:>>>|\.\.\.|from\s+\w|import\s+\w|def\s|async\s+def\s|class\s|@|return\b|#)"
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def recall_query(goal: str, *, max_words: int = 24) -> str:
    """Rewrite a goal into a short search query, deterministically.

    Long goals embed badly (e5 reads 512 tokens and averages them), and code blocks drown the
    intent. So: drop code blocks, doctest and code lines; keep the first sentence of the prose;
    append the key identifiers (defined names, backticked names, error types) it lacks.
    """
    goal = goal[:20_000]  # bounds the regex work; the query keeps a few words anyway
    identifiers: list[str] = []

    def add(name: str) -> None:
        name = name.strip()
        if name and name not in identifiers:
            identifiers.append(name)

    for block in _FENCED.findall(goal):
        for name in _DEF.findall(block):
            add(name)
    for name in _DEF.findall(goal):
        add(name)
    for name in _BACKTICK.findall(goal):
        call = _CALL.match(name)
        add(call.group(1) if call else name)
    for name in _ERROR_NAME.findall(goal):
        add(name)

    prose_src = _FENCED.sub(" ", goal)
    prose_lines = [
        line for line in prose_src.splitlines() if line.strip() and not _CODE_LINE.match(line)
    ]
    prose = " ".join(" ".join(prose_lines).replace('"""', " ").replace("'''", " ").split())
    prose = prose.replace("`", "")
    first = _SENTENCE_END.split(prose, maxsplit=1)[0] if prose else ""
    for name in _IDENT.findall(prose):
        add(name)
    for name in _CALL.findall(prose):
        add(name)

    words = first.split()
    extra = [name for name in identifiers if name not in first]
    words = words[:max_words]
    room = max_words - len(words)
    if room < len(extra):
        # identifiers are the most specific words: keep them, shorten the sentence instead
        keep_sentence = max(max_words - len(extra), max_words // 2)
        words = words[:keep_sentence]
        room = max_words - len(words)
    words.extend(extra[:room])
    return " ".join(words)
