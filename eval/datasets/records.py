"""Committed evaluation sets stored as a JSON list of objects, each made into a typed record."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path


def load_records[T](path: Path, make: Callable[..., T], what: str) -> list[T]:
    """Every object in `path` made with `make(**object)`.

    A malformed object is a ValueError naming `what` and its `id`, so a broken committed set
    says which entry to fix instead of failing deep inside an evaluation.
    """
    records = []
    for raw in json.loads(path.read_text(encoding="utf-8")):
        try:
            records.append(make(**raw))
        except TypeError as exc:
            raise ValueError(f"{what} {raw.get('id', '?')}: {exc}") from None
    return records
