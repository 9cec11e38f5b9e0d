"""Scoring: decay per kind, access recency, frequency, relevance and eviction."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from memory.scoring import (
    DAY,
    HOUR,
    ScoringParams,
    access_recency_factor,
    calibrated_similarity,
    decay,
    frequency_factor,
    half_life_for,
    recall_score,
    relevance,
    should_evict,
)

P = ScoringParams()


def test_decay_halves_each_half_life() -> None:
    assert decay(0, 10) == 1.0
    assert decay(10, 10) == pytest.approx(0.5)
    assert decay(30, 10) == pytest.approx(0.125)


def test_decay_treats_future_timestamps_as_now() -> None:
    assert decay(-50, 10) == 1.0


def test_decay_rejects_non_positive_half_life() -> None:
    with pytest.raises(ValueError):
        decay(1, 0)


def test_kinds_decay_in_the_documented_order() -> None:
    order = ["instruction", "fact", "critique", "tool_result"]
    lives = [half_life_for(kind, P) for kind in order]
    assert lives == sorted(lives, reverse=True)
    assert half_life_for("test_failure", P) == half_life_for("critique", P)
    # after a month an instruction is intact, a tool result is gone
    month = 30 * DAY
    assert decay(month, half_life_for("instruction", P)) > 0.99
    assert decay(month, half_life_for("tool_result", P)) < 1e-9


def test_unknown_kind_uses_default_half_life() -> None:
    params = ScoringParams(default_half_life=5 * HOUR)
    assert half_life_for("something-new", params) == 5 * HOUR


def test_half_lives_are_parameters() -> None:
    params = ScoringParams(half_lives={"fact": 1 * HOUR})
    assert half_life_for("fact", params) == 1 * HOUR


def test_access_recency_ranges_between_one_minus_weight_and_one() -> None:
    params = ScoringParams(recency_weight=0.4, access_half_life=DAY)
    assert access_recency_factor(0, params) == pytest.approx(1.0)
    assert access_recency_factor(DAY, params) == pytest.approx(0.8)
    assert access_recency_factor(1000 * DAY, params) == pytest.approx(0.6)


def test_frequency_grows_with_use_and_saturates() -> None:
    values = [frequency_factor(n, P) for n in (0, 1, 3, 10, 1000)]
    assert values == sorted(values)
    assert values[0] == pytest.approx(1 - P.frequency_weight)
    assert values[-1] == pytest.approx(1.0)
    assert frequency_factor(-3, P) == frequency_factor(0, P)


def _rel(**kw: float) -> float:
    base: dict[str, float] = {
        "importance": 0.8,
        "created_at": 0.0,
        "last_access": 0.0,
        "access_count": 0,
        "now": 0.0,
    }
    base.update(kw)
    kind = "fact"
    return relevance(
        importance=base["importance"],
        kind=kind,
        created_at=base["created_at"],
        last_access=base["last_access"],
        access_count=int(base["access_count"]),
        now=base["now"],
        params=P,
    )


def test_relevance_is_monotone_in_each_factor() -> None:
    fresh = _rel()
    assert 0 < fresh <= 0.8
    assert _rel(importance=0.4) == pytest.approx(fresh / 2)
    assert _rel(now=90 * DAY, last_access=90 * DAY) < fresh  # older memory
    assert _rel(now=10 * DAY) < _rel(now=10 * DAY, last_access=10 * DAY)  # stale access
    assert _rel(access_count=5) > fresh  # used more often


def test_relevance_clamps_importance_and_stays_in_unit_interval() -> None:
    assert _rel(importance=3.0) <= 1.0
    assert _rel(importance=-1.0) == 0.0


def test_same_age_different_kinds() -> None:
    week = 7 * DAY
    common = {"importance": 1.0, "created_at": 0.0, "last_access": week, "access_count": 0}
    rel = {
        kind: relevance(kind=kind, now=week, params=P, **common)  # type: ignore[arg-type]
        for kind in ("instruction", "fact", "critique", "tool_result")
    }
    assert rel["instruction"] > rel["fact"] > rel["critique"] > rel["tool_result"]


def test_calibrated_similarity_maps_floor_to_zero_and_one_to_one() -> None:
    assert calibrated_similarity(0.75, 0.75) == 0.0
    assert calibrated_similarity(0.5, 0.75) == 0.0
    assert calibrated_similarity(1.0, 0.75) == 1.0
    assert calibrated_similarity(0.875, 0.75) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        calibrated_similarity(0.5, 1.0)


def test_recall_score_multiplies_similarity_and_relevance() -> None:
    params = ScoringParams(similarity_floor=0.0)
    assert recall_score(0.5, 0.5, params) == pytest.approx(0.25)


def test_should_evict_strictly_below_threshold() -> None:
    assert should_evict(0.01, 0.05)
    assert not should_evict(0.05, 0.05)
    assert not should_evict(0.9, 0.05)


def test_params_are_validated_and_frozen() -> None:
    with pytest.raises(ValidationError):
        ScoringParams(recency_weight=1.5)
    with pytest.raises(ValidationError):
        ScoringParams(unknown_knob=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        P.recency_weight = 0.1  # type: ignore[misc]
