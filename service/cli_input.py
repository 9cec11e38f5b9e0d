"""Checks on `strategos run`'s arguments, done before any model call.

A task that runs for minutes and then fails on a typo in `--out` wastes the whole run, so the
goal and the delivery folder are checked first, and a bad one is a usage error (exit 2).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from graphs.state import MAX_GOAL_CHARS
from service.cli_output import fail
from service.exit_codes import ExitCode

STDIN = "-"


def read_goal(goal: str | None, goal_file: Path | None) -> str:
    """The goal from the argument, `--goal-file PATH`, or stdin (`-` for either)."""
    if goal is None and goal_file is None:
        raise fail(
            "no goal: give it as an argument ('-' reads stdin) or with --goal-file PATH",
            ExitCode.USAGE,
        )
    if goal is not None and goal_file is not None:
        raise fail("give the goal as an argument or with --goal-file, not both", ExitCode.USAGE)
    if goal_file is not None:
        text = _read_file(goal_file)
    elif goal == STDIN:
        text = sys.stdin.read()
    else:
        text = str(goal)
    return check_goal(text)


def _read_file(path: Path) -> str:
    if str(path) == STDIN:
        return sys.stdin.read()
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise fail(f"cannot read --goal-file {path}: {reason}", ExitCode.USAGE) from None


def check_goal(goal: str) -> str:
    """The goal unless it is blank or longer than a task accepts."""
    if not goal.strip():
        raise fail("the goal is empty", ExitCode.USAGE)
    if len(goal) > MAX_GOAL_CHARS:
        raise fail(
            f"the goal is {len(goal)} characters long; at most {MAX_GOAL_CHARS} are accepted "
            "(put the essentials in the goal, not whole files)",
            ExitCode.USAGE,
        )
    return goal


def check_out_dir(out: Path) -> Path:
    """`--out` as an absolute path, if the files could be written there (it may not exist yet).

    The nearest existing ancestor decides: it must be a writable directory, since delivery
    creates the missing folders below it.
    """
    target = out.expanduser().resolve()
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        what = "is not a directory" if existing == target else f"is inside {existing}, a file"
        raise fail(f"--out {out} {what}", ExitCode.USAGE)
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == target else f" (its parent {existing} is not writable)"
        raise fail(f"--out {out} is not writable{where}", ExitCode.USAGE)
    return target
