"""Exit statuses of `strategos`: the one table scripts and CI read a task's outcome from.

A task's outcome is more than "it ran": code that was delivered but fails the goal's own
examples, or nothing delivered at all, must not look like success to a caller that checks `$?`.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum


class ExitCode(IntEnum):
    """What `strategos` exits with (documented in the README's table)."""

    DELIVERED = 0
    """The files were delivered and the goal's examples pass."""
    OK = 0
    """The same status for a command that is not a task run (`show`, `dlq`): it succeeded."""
    ERROR = 1
    """Something failed (model, database, sandbox, server); a started task is saved."""
    USAGE = 2
    """Bad arguments or an unknown task: nothing ran."""
    DELIVERED_FAILING = 3
    """The best code the team had was delivered, but it fails the goal's examples."""
    NOT_DELIVERED = 4
    """The task ended without delivering (stopped by a guard with nothing to deliver, or the
    delivery itself failed)."""
    REFUSED = 5
    """The delivery was refused: `--approve deny`, or a human rejected the final attempt."""
    TASK_CONFLICT = 6
    """The task id is taken: bound to another goal, or in a state the command does not fit."""
    PAUSED = 10
    """The task waits for a human's approval (`strategos approve TASK_ID`)."""
    INTERRUPTED = 130
    """Interrupted with Ctrl-C; the task continues with `strategos resume TASK_ID`."""


def outcome_code(report: Mapping[str, object]) -> ExitCode:
    """The exit status a finished task's report stands for.

    Passing means the goal's examples (the ground truth) all pass and the code loaded; the
    team's own tests may be wrong, so they do not decide it.
    """
    if report.get("status") == "delivered":
        tests = report.get("tests")
        tests = tests if isinstance(tests, Mapping) else {}
        passing = not tests.get("error") and tests.get("spec_passed") == tests.get("spec_total")
        return ExitCode.DELIVERED if passing else ExitCode.DELIVERED_FAILING
    approval = report.get("approval")
    if isinstance(approval, Mapping) and approval.get("approved") is False:
        if not report.get("delivery_error"):
            return ExitCode.REFUSED
    return ExitCode.NOT_DELIVERED
