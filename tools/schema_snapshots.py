"""Committed snapshots of every tool's contract, and the drift guard that compares them.

`tools/schemas/<name>.json` holds each tool's contract (description, classes, argument and result
schemas) with its version. The test suite fails when a contract changes without a version bump,
so a model-facing change is never shipped silently. Regenerate them after a bump with
`python -m tools.schema_snapshots --write-snapshots`; `--check` is the guard on its own.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tools.registry import ToolRegistry, canonical_json

__all__ = ["SCHEMAS_DIR", "main", "snapshot_problems", "write_snapshots"]

SCHEMAS_DIR = Path(__file__).resolve().parent / "schemas"


def _contract_of(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in snapshot.items() if k != "version"}


def snapshot_problems(registry: ToolRegistry, directory: Path = SCHEMAS_DIR) -> list[str]:
    """Every way the committed snapshots disagree with the registry (empty when in sync).

    A contract that changed while the version stayed the same is tool drift: the message asks
    for a version bump. A changed version with a stale snapshot asks for regeneration.
    """
    problems: list[str] = []
    regen = "then run `python -m tools.schema_snapshots --write-snapshots`"
    for spec in registry.list():
        path = directory / f"{spec.name}.json"
        if not path.exists():
            problems.append(f"{spec.name}: no snapshot {path.name}; {regen}.")
            continue
        saved = json.loads(path.read_text())
        same_contract = canonical_json(_contract_of(saved)) == canonical_json(spec.contract())
        old = str(saved.get("version", "0.0.0"))
        if not same_contract and old == spec.version:
            problems.append(
                f"{spec.name}: its schema or description changed but its version is still "
                f"{spec.version}; bump the version (major for a breaking change), {regen}."
            )
        elif old != spec.version:
            old_tuple = tuple(int(p) for p in old.split("."))
            if old_tuple > spec.version_tuple:
                problems.append(f"{spec.name}: version went down from {old} to {spec.version}.")
            else:
                problems.append(f"{spec.name}: snapshot is for version {old}; {regen}.")
    known = {f"{name}.json" for name in registry.names()}
    for stale in sorted(p.name for p in directory.glob("*.json") if p.name not in known):
        problems.append(f"{stale}: snapshot of a tool that is not registered; delete it.")
    return problems


def write_snapshots(registry: ToolRegistry, directory: Path = SCHEMAS_DIR) -> list[Path]:
    """Write `<name>.json` for every tool and delete snapshots of unregistered tools."""
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, schema in registry.json_schemas().items():
        path = directory / f"{name}.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        written.append(path)
    for path in directory.glob("*.json"):
        if path not in written:
            path.unlink()
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m tools.schema_snapshots --write-snapshots | --check`."""
    parser = argparse.ArgumentParser(prog="python -m tools.schema_snapshots", description=__doc__)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write-snapshots", action="store_true", help="rewrite tools/schemas/")
    group.add_argument("--check", action="store_true", help="exit 1 if snapshots are out of date")
    options = parser.parse_args(argv)
    from tools.builtin import default_registry

    registry = default_registry()
    if options.write_snapshots:
        for path in write_snapshots(registry):
            print(path)
        return 0
    problems = snapshot_problems(registry)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
