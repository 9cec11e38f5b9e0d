"""The state reducers: how concurrent and repeated node updates merge."""

from __future__ import annotations

from graphs.state import (
    MAX_KEPT_REVIEWS,
    MAX_KEPT_TEST_RUNS,
    Candidate,
    ReviewVerdict,
    Usage,
    add_int,
    add_usage,
    append_reviews,
    append_test_runs,
    keep_best,
    merge_files,
    union_sorted,
)
from graphs.state import (
    TestRun as RunRecord,
)


def run(run_id: str, iteration: int = 1, spec_passed: int = 0) -> RunRecord:
    return {
        "run_id": run_id,
        "iteration": iteration,
        "code_hash": f"hash-{run_id}",
        "spec_passed": spec_passed,
        "spec_total": 3,
        "model_passed": 0,
        "model_total": 0,
        "checks": [],
        "error": "",
    }


def review(iteration: int) -> ReviewVerdict:
    return {"iteration": iteration, "verdict": "approve", "issues": [], "rejected_tests": []}


def candidate(score: tuple[int, int], iteration: int) -> Candidate:
    return {"files": {"solution.py": f"# v{iteration}\n"}, "iteration": iteration, "score": score}


# merge_files


def test_merge_files_adds_and_overwrites_by_path() -> None:
    left = {"solution.py": "old\n", "helper.py": "h\n"}
    merged = merge_files(left, {"solution.py": "new\n", "README.md": "r\n"})
    assert merged == {"solution.py": "new\n", "helper.py": "h\n", "README.md": "r\n"}


def test_merge_files_empty_string_deletes_and_missing_delete_is_harmless() -> None:
    merged = merge_files({"a.py": "a\n", "b.py": "b\n"}, {"a.py": "", "never.py": ""})
    assert merged == {"b.py": "b\n"}
    assert "never.py" not in merged


def test_merge_files_does_not_mutate_inputs_and_accepts_none() -> None:
    left = {"a.py": "a\n"}
    right = {"a.py": ""}
    assert merge_files(left, right) == {}
    assert left == {"a.py": "a\n"}
    assert right == {"a.py": ""}
    assert merge_files(None, {"a.py": "a\n"}) == {"a.py": "a\n"}
    assert merge_files({"a.py": "a\n"}, None) == {"a.py": "a\n"}
    assert merge_files(None, None) == {}


# add_usage


def test_add_usage_adds_field_by_field() -> None:
    a: Usage = {"model_calls": 1, "prompt_tokens": 100, "completion_tokens": 10}
    b: Usage = {"model_calls": 2, "prompt_tokens": 50, "completion_tokens": 7}
    assert add_usage(a, b) == {"model_calls": 3, "prompt_tokens": 150, "completion_tokens": 17}


def test_add_usage_treats_none_as_zero() -> None:
    a: Usage = {"model_calls": 1, "prompt_tokens": 100, "completion_tokens": 10}
    zero = {"model_calls": 0, "prompt_tokens": 0, "completion_tokens": 0}
    assert add_usage(None, a) == a
    assert add_usage(a, None) == a
    assert add_usage(None, None) == zero


# append_test_runs


def test_test_runs_append_in_order() -> None:
    merged = append_test_runs([run("a")], [run("b"), run("c")])
    assert [r["run_id"] for r in merged] == ["a", "b", "c"]
    assert append_test_runs(None, [run("a")]) == [run("a")]
    assert append_test_runs([run("a")], None) == [run("a")]


def test_test_runs_keep_only_the_newest() -> None:
    runs: list[RunRecord] = []
    for index in range(MAX_KEPT_TEST_RUNS + 5):
        runs = append_test_runs(runs, [run(f"r{index}", iteration=index)])
    assert len(runs) == MAX_KEPT_TEST_RUNS
    expected = [f"r{i}" for i in range(5, MAX_KEPT_TEST_RUNS + 5)]
    assert [r["run_id"] for r in runs] == expected


def test_repeated_run_id_moves_to_the_end_without_duplicating() -> None:
    left = [run("a"), run("b"), run("c")]
    merged = append_test_runs(left, [run("a", iteration=4, spec_passed=3)])
    assert [r["run_id"] for r in merged] == ["b", "c", "a"]
    assert merged[-1]["iteration"] == 4
    assert merged[-1]["spec_passed"] == 3


def test_repeated_run_id_on_a_full_list_keeps_the_bound() -> None:
    left = [run(f"r{i}") for i in range(MAX_KEPT_TEST_RUNS)]
    merged = append_test_runs(left, [run("r0")])
    assert len(merged) == MAX_KEPT_TEST_RUNS
    assert [r["run_id"] for r in merged] == [f"r{i}" for i in range(1, MAX_KEPT_TEST_RUNS)] + ["r0"]


# append_reviews


def test_reviews_append_and_stay_bounded() -> None:
    reviews: list[ReviewVerdict] = []
    for iteration in range(MAX_KEPT_REVIEWS + 3):
        reviews = append_reviews(reviews, [review(iteration)])
    assert len(reviews) == MAX_KEPT_REVIEWS
    assert [r["iteration"] for r in reviews] == list(range(3, MAX_KEPT_REVIEWS + 3))
    assert append_reviews(None, None) == []
    assert append_reviews([review(1)], None) == [review(1)]


# add_int


def test_add_int_counts_increments() -> None:
    assert add_int(3, 1) == 4
    assert add_int(None, 1) == 1
    assert add_int(2, None) == 2
    assert add_int(None, None) == 0


# keep_best


def test_keep_best_keeps_the_higher_score() -> None:
    better = candidate((3, 1), iteration=1)
    worse = candidate((2, 5), iteration=2)
    assert keep_best(better, worse) == better
    assert keep_best(worse, better) == better


def test_keep_best_compares_model_tests_when_spec_ties() -> None:
    old = candidate((2, 1), iteration=1)
    new = candidate((2, 3), iteration=2)
    assert keep_best(old, new) == new
    assert keep_best(new, old) == new


def test_keep_best_prefers_the_newer_on_a_tie() -> None:
    old = candidate((2, 2), iteration=1)
    new = candidate((2, 2), iteration=2)
    assert keep_best(old, new) == new


def test_keep_best_accepts_lists_as_scores_after_a_json_round_trip() -> None:
    # Checkpoints serialise tuples as lists; the comparison must still work.
    old: Candidate = {"files": {}, "iteration": 1, "score": [3, 0]}  # type: ignore[typeddict-item]
    new = candidate((2, 9), iteration=2)
    assert keep_best(old, new) == old


def test_keep_best_ignores_none() -> None:
    only = candidate((1, 1), iteration=1)
    assert keep_best(only, None) == only
    assert keep_best(None, only) == only
    assert keep_best(None, None) is None


# union_sorted


def test_union_sorted_is_a_sorted_set_union() -> None:
    assert union_sorted(["b", "a"], ["c", "a"]) == ["a", "b", "c"]
    assert union_sorted(None, ["b", "b", "a"]) == ["a", "b"]
    assert union_sorted(["x"], None) == ["x"]
    assert union_sorted(None, None) == []
