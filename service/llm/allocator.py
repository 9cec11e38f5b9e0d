"""How a task's token budget is shared among its roles: fair shares with capped work stealing.

A role is a graph node that calls the model (`langgraph_node`: coder, tester, reviewer, …).
Each role is owed an equal share of the task's budget. A role that is busy (it has a call in
flight) keeps its unused share; the unused shares of idle roles may be borrowed by the role
asking, so a pipeline where one role does most of the work is not starved, but never past
`max_fraction` of the whole budget, so one chatty role cannot take everything from the others.

Pure functions: the budget ledger (`service.budget`) applies the result as one more limit
on the call, next to the task's total and the tenant's quota, which alone guarantee no overrun.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence

__all__ = ["allowance", "fair_shares", "role_free"]


def fair_shares(budget: int, roles: Sequence[str]) -> dict[str, int]:
    """`budget` split evenly among `roles` (the remainder to the first ones, so it adds up)."""
    unique = list(dict.fromkeys(roles))
    if not unique:
        return {}
    base, extra = divmod(max(budget, 0), len(unique))
    return {role: base + (1 if i < extra else 0) for i, role in enumerate(unique)}


def allowance(
    role: str,
    budget: int,
    roles: Sequence[str],
    spent: Mapping[str, int],
    busy: Collection[str],
    max_fraction: float = 1.0,
) -> int:
    """Tokens `role` may have spent in all (its own share plus what it may borrow).

    `spent` counts settled and reserved tokens per role; `busy` are the roles with a call in
    flight (their unused share is theirs). A role not in `roles` (an unexpected caller) is one
    more role with an equal share. The borrowing is capped at `max_fraction` of the budget, but
    never below the role's own share.
    """
    shares = fair_shares(budget, [*roles, role])
    own = shares[role]
    lendable = sum(
        max(0, share - spent.get(other, 0))
        for other, share in shares.items()
        if other != role and other not in busy
    )
    cap = max(own, math.floor(max_fraction * budget))
    return min(cap, own + lendable)


def role_free(
    role: str,
    budget: int,
    roles: Sequence[str],
    spent: Mapping[str, int],
    busy: Collection[str],
    max_fraction: float = 1.0,
) -> int:
    """Tokens `role` may still reserve now (its allowance less what it spent), at least 0."""
    limit = allowance(role, budget, roles, spent, busy, max_fraction)
    return max(0, limit - spent.get(role, 0))
