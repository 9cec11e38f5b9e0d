"""Fair shares of a task's budget among its roles, and capped borrowing from idle roles."""

from __future__ import annotations

from service.llm.allocator import allowance, fair_shares, role_free

ROLES = ("supervisor", "coder", "tester", "reviewer")


def test_fair_shares_split_the_whole_budget_evenly() -> None:
    shares = fair_shares(1003, ROLES)
    assert sum(shares.values()) == 1003
    assert sorted(shares.values()) == [250, 251, 251, 251]


def test_a_busy_role_borrows_the_unused_shares_of_idle_roles() -> None:
    # tester and reviewer have spent nothing and are idle: the coder may take their shares
    spent = {"coder": 250, "supervisor": 100}
    assert allowance("coder", 1000, ROLES, spent, busy=set()) == 250 + 150 + 250 + 250


def test_a_busy_role_keeps_its_unused_share() -> None:
    spent = {"coder": 250}
    # the tester has a call in flight: its 250 are not lendable
    assert allowance("coder", 1000, ROLES, spent, busy={"tester"}) == 250 + 250 + 250


def test_borrowing_is_capped_but_never_below_the_own_share() -> None:
    assert allowance("coder", 1000, ROLES, {}, busy=set(), max_fraction=0.4) == 400
    assert allowance("coder", 1000, ROLES, {}, busy=set(), max_fraction=0.1) == 250


def test_what_a_role_may_still_reserve_shrinks_as_it_spends() -> None:
    assert role_free("coder", 1000, ROLES, {"coder": 380}, set(), 0.4) == 20
    assert role_free("coder", 1000, ROLES, {"coder": 450}, set(), 0.4) == 0


def test_an_unexpected_caller_is_one_more_role_with_a_fair_share() -> None:
    spent = {role: 200 for role in ROLES}  # everyone has used the share of five roles
    assert allowance("summariser", 1000, ROLES, spent, busy=set(ROLES)) == 200
