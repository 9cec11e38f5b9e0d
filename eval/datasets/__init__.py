"""Coding datasets in the HumanEval format (the bundled HumanEval set or user JSONL files)."""

from eval.datasets.humaneval import (
    HUMANEVAL,
    CodingTask,
    DatasetError,
    load_dataset,
    load_humaneval,
    load_jsonl,
)

__all__ = [
    "HUMANEVAL",
    "CodingTask",
    "DatasetError",
    "load_dataset",
    "load_humaneval",
    "load_jsonl",
]
