"""Dataset loaders: the bundled HumanEval set and user JSONL files in the same format."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from eval.datasets import CodingTask, DatasetError, load_dataset, load_humaneval, load_jsonl

TASK = {
    "task_id": "Mine/0",
    "prompt": 'def add(a: int, b: int) -> int:\n    """Add two numbers."""\n',
    "entry_point": "add",
    "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n",
    "canonical_solution": "    return a + b\n",
}


def write_jsonl(path: Path, records: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_humaneval_has_164_tasks_with_unique_ids() -> None:
    tasks = load_humaneval()
    assert len(tasks) == 164
    assert len({t.task_id for t in tasks}) == 164
    first = tasks[0]
    assert first.task_id == "HumanEval/0"
    assert first.entry_point == "has_close_elements"
    assert "def check(candidate)" in first.test
    assert first.canonical_solution


def test_load_dataset_by_name_and_by_path(tmp_path: Path) -> None:
    assert len(load_dataset("humaneval")) == 164
    assert len(load_dataset("HumanEval")) == 164
    path = write_jsonl(tmp_path / "mine.jsonl", [TASK])
    assert load_dataset(str(path)) == [CodingTask(**TASK)]


def test_load_jsonl_round_trip_plain_and_gzip(tmp_path: Path) -> None:
    second = {**TASK, "task_id": "Mine/1"}
    del second["canonical_solution"]
    plain = write_jsonl(tmp_path / "tasks.jsonl", [TASK, second])
    tasks = load_jsonl(plain)
    assert [t.task_id for t in tasks] == ["Mine/0", "Mine/1"]
    assert tasks[0].model_dump() == TASK
    assert tasks[1].canonical_solution is None

    compressed = tmp_path / "tasks.jsonl.gz"
    compressed.write_bytes(gzip.compress(plain.read_bytes()))
    assert load_jsonl(compressed) == tasks

    rewritten = write_jsonl(tmp_path / "again.jsonl", [t.model_dump() for t in tasks])
    assert load_jsonl(rewritten) == tasks


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n" + json.dumps(TASK) + "\n\n", encoding="utf-8")
    assert len(load_jsonl(path)) == 1


def test_malformed_line_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(TASK) + "\n" + "{not json\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"bad\.jsonl:2: invalid JSON"):
        load_jsonl(path)


def test_missing_field_error_names_line_and_field(tmp_path: Path) -> None:
    incomplete = {k: v for k, v in TASK.items() if k != "entry_point"}
    path = write_jsonl(tmp_path / "bad.jsonl", [{**TASK, "task_id": "ok"}, TASK, incomplete])
    with pytest.raises(DatasetError, match=r"bad\.jsonl:3: .*entry_point"):
        load_jsonl(path)


def test_duplicate_task_ids_are_rejected(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "dup.jsonl", [TASK, TASK])
    with pytest.raises(DatasetError, match=r"dup\.jsonl:2: duplicate task_id"):
        load_jsonl(path)


def test_missing_dataset_is_a_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="humaneval"):
        load_dataset(str(tmp_path / "nope.jsonl"))
    with pytest.raises(DatasetError, match="cannot read"):
        load_jsonl(tmp_path / "nope.jsonl")


@pytest.mark.parametrize(
    "override",
    [{"task_id": ""}, {"prompt": "  "}, {"test": ""}, {"entry_point": "not an id"}],
)
def test_coding_task_validates_fields(override: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        CodingTask(**{**TASK, **override})
