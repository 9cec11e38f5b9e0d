"""Prompts of the execution-first team core, laid out so the server's KV cache is reused.

Every role's call starts with the same bytes: the system message is the team preamble
(`team@1` without its header line) and the user message opens with the goal. Only then come the
role's instructions (`coder@2`, `coder_repair@1`, `tester@3`, `reviewer@3`, header line included
so the scripted model still sees the role) and what the call is about. With a 1.5B model served
at ~76 prompt tokens/s, re-reading a shared goal for each of several samples and roles is the
cost this layout avoids.

With `nodes.prompting.assemble` the same layout is `system=preamble()`,
`pinned=[goal_section(state), Section("", instructions(role, ...))]`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from nodes.prompts import load_prompt

__all__ = ["GOAL_TITLE", "TEAM_PROMPT", "instructions", "messages", "preamble"]

TEAM_PROMPT = "team"
GOAL_TITLE = "Goal"
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def preamble(version: int | None = None) -> str:
    """The shared system message: the team prompt without its `# role:` header line."""
    text = load_prompt(TEAM_PROMPT, version).text
    return text.split("\n", 1)[1].strip() if "\n" in text else ""


def instructions(
    role: str, values: Mapping[str, object] | None = None, version: int | None = None
) -> str:
    """A role's prompt text with its `{name}` placeholders filled in.

    ValueError when a placeholder is left without a value or a value has no placeholder, so a
    prompt and its caller cannot drift apart silently.
    """
    text = load_prompt(role, version).text
    values = values or {}
    wanted = set(_PLACEHOLDER.findall(text))
    if missing := wanted - set(values):
        raise ValueError(f"{role}: no value for {sorted(missing)}")
    if unused := set(values) - wanted:
        raise ValueError(f"{role}: the prompt has no placeholder {sorted(unused)}")
    filled = values
    return _PLACEHOLDER.sub(lambda m: str(filled[m.group(1)]), text)


def messages(
    role: str,
    goal: str,
    sections: Sequence[str] = (),
    values: Mapping[str, object] | None = None,
    version: int | None = None,
) -> tuple[str, str]:
    """(system, user) for one call: preamble; goal, the role's instructions, then `sections`.

    String work only (every prompt file is read when `nodes.prompts` is imported), so nodes
    call it on the event loop: a thread hop per candidate cost more than the work.
    """
    blocks = [f"{GOAL_TITLE}:\n{goal.strip()}", instructions(role, values, version)]
    blocks += [s for s in sections if s]
    return preamble(), "\n\n".join(blocks)
