"""deliver_patch: deliver a repository task's result as a reviewed patch plus the changed files.

A repository task is handed back the way a person reviews a change: a unified diff
(`patch.diff`, git-style with `a/` and `b/` paths, so `git apply` or `patch -p1` on the original
repository reproduces the working copy) and the full text of every added or modified file under
`files/`. The arguments are the changed files' text before and after (`changes_between` builds
them from the original snapshot and the working copy); the patch is computed from them while the
arguments are validated, so the human asked to approve the call sees the very diff that is
written, never one a caller typed. It always needs approval, and like `deliver_files` it is
idempotent by construction (a file already holding its text is left alone) and ledgered, so a
completed delivery is replayed, never written twice. The workspace given to the tool is the
run's delivery folder, chosen by the service (`TeamDeps.destination`), never by a request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tools.errors import ToolError
from tools.registry import ToolContext, ToolExample, ToolSpec, WorkspacePath
from tools.repo_diff import FileChange, diff_snapshots

__all__ = [
    "DeliverPatchArgs",
    "DeliverPatchResult",
    "FileDelta",
    "PATCH_FILE",
    "SPEC",
    "changes_between",
    "deliver_patch",
]

PATCH_FILE = "patch.diff"
FILES_DIR = "files"
MAX_FILES = 500


class FileDelta(BaseModel):
    """One changed file: its text in the original (None: added) and now (None: deleted)."""

    model_config = ConfigDict(extra="forbid")

    path: WorkspacePath
    before: str | None = Field(default=None, max_length=1_000_000)
    after: str | None = Field(default=None, max_length=1_000_000)

    @model_validator(mode="after")
    def _differs(self) -> Self:
        if self.before == self.after:
            raise ValueError(f"{self.path!r} is unchanged; list only files that differ")
        return self


class DeliverPatchArgs(BaseModel):
    """Arguments of deliver_patch; `patch` is filled in from `changes` (or must equal it)."""

    model_config = ConfigDict(extra="forbid")

    changes: list[FileDelta] = Field(min_length=1, max_length=MAX_FILES)
    summary: str = Field(default="", max_length=2000, description="What the change does.")
    patch: str = Field(
        default="",
        description="The unified diff of `changes`; computed when empty, checked when given.",
    )

    @model_validator(mode="after")
    def _patch_of_changes(self) -> Self:
        paths = [delta.path for delta in self.changes]
        repeated = sorted({p for p in paths if paths.count(p) > 1})
        if repeated:
            raise ValueError(f"each path may appear once; repeated: {', '.join(repeated)}")
        computed = diff_snapshots(
            {d.path: d.before for d in self.changes if d.before is not None},
            {d.path: d.after for d in self.changes if d.after is not None},
        ).patch
        if self.patch and self.patch != computed:
            raise ValueError("`patch` is not the diff of `changes`; leave it empty")
        self.patch = computed
        return self


class DeliverPatchResult(BaseModel):
    """What was delivered, relative to the delivery folder."""

    patch_file: str
    added: list[str]
    modified: list[str]
    deleted: list[str]
    written: list[str] = Field(description="Files written, sorted (the patch included).")
    unchanged: list[str] = Field(
        default_factory=list, description="Files that already held the delivered text."
    )
    bytes_written: int


def changes_between(
    original: Mapping[str, str], current: Mapping[str, str], summary: str = ""
) -> dict[str, Any]:
    """The deliver_patch arguments for turning `original` into `current` (changed files only)."""
    diff = diff_snapshots(original, current)
    if not diff.changes:
        raise ToolError("Nothing changed: the working copy equals the original repository.")
    return {
        "changes": [{"path": c.path, "before": c.before, "after": c.after} for c in diff.changes],
        "summary": summary,
    }


def _outputs(args: DeliverPatchArgs) -> dict[str, str]:
    out = {PATCH_FILE: args.patch}
    for delta in args.changes:
        if delta.after is not None:
            out[f"{FILES_DIR}/{delta.path}"] = delta.after
    return out


async def deliver_patch(args: DeliverPatchArgs, ctx: ToolContext) -> DeliverPatchResult:
    """Write the patch and the changed files that do not already hold their text."""
    total = 0
    written: list[str] = []
    unchanged: list[str] = []
    for path, text in sorted(_outputs(args).items()):
        if await ctx.workspace.exists(path) and await ctx.workspace.read(path) == text:
            unchanged.append(path)
            continue
        await ctx.workspace.write(path, text)
        written.append(path)
        total += len(text.encode())
    kinds = [FileChange(d.path, d.before, d.after).kind for d in args.changes]
    return DeliverPatchResult(
        patch_file=PATCH_FILE,
        added=[d.path for d, k in zip(args.changes, kinds, strict=True) if k == "added"],
        modified=[d.path for d, k in zip(args.changes, kinds, strict=True) if k == "modified"],
        deleted=[d.path for d, k in zip(args.changes, kinds, strict=True) if k == "deleted"],
        written=written,
        unchanged=unchanged,
        bytes_written=total,
    )


def simulate(args: DeliverPatchArgs) -> DeliverPatchResult:
    """A believable answer for a honeypot hit."""
    outputs = _outputs(args)
    return DeliverPatchResult(
        patch_file=PATCH_FILE,
        added=[d.path for d in args.changes if d.before is None],
        modified=[d.path for d in args.changes if d.before is not None and d.after is not None],
        deleted=[d.path for d in args.changes if d.after is None],
        written=sorted(outputs),
        bytes_written=sum(len(t.encode()) for t in outputs.values()),
    )


_FIX = FileDelta(
    path="calc/ops.py",
    before="def add(a, b):\n    return a - b\n",
    after="def add(a, b):\n    return a + b\n",
)

SPEC: ToolSpec[DeliverPatchArgs, DeliverPatchResult] = ToolSpec(
    name="deliver_patch",
    version="1.0.0",
    description=(
        "Deliver a repository task's result: `changes` lists each changed file's text before "
        "(null: added) and after (null: deleted). Writes the unified diff to patch.diff and "
        "each added or modified file under files/ in the task's delivery folder. Always asks a "
        "human first, who sees the diff."
    ),
    args_model=DeliverPatchArgs,
    result_model=DeliverPatchResult,
    handler=deliver_patch,
    side_effect="idempotent",
    approval="always",
    simulate=simulate,
    examples=(
        ToolExample(
            title="fix one function and add a test",
            args=DeliverPatchArgs(
                changes=[
                    _FIX,
                    FileDelta(path="tests/test_add.py", after="def test_add():\n    pass\n"),
                ],
                summary="add adds",
            ),
            result=DeliverPatchResult(
                patch_file="patch.diff",
                added=["tests/test_add.py"],
                modified=["calc/ops.py"],
                deleted=[],
                written=["files/calc/ops.py", "files/tests/test_add.py", "patch.diff"],
                bytes_written=353,
            ),
            expect=lambda r: r.modified == ["calc/ops.py"] and "patch.diff" in r.written,
        ),
        ToolExample(
            title="delete a file",
            args=DeliverPatchArgs(changes=[FileDelta(path="old.py", before="X = 1\n")]),
            expect=lambda r: r.deleted == ["old.py"] and r.written == ["patch.diff"],
        ),
    ),
)
