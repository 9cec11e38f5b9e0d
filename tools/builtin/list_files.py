"""list_files: the files of the workspace (or of one directory in it)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from tools.registry import ToolContext, ToolExample, ToolSpec, WorkspacePath

__all__ = ["FileEntry", "ListFilesArgs", "ListFilesResult", "SPEC", "list_files"]


class ListFilesArgs(BaseModel):
    """Arguments of list_files."""

    model_config = ConfigDict(extra="forbid")

    prefix: WorkspacePath = Field(
        default="", description="A directory inside the workspace; '' lists everything."
    )
    limit: int = Field(default=500, ge=1, le=5000, description="Entries returned at most.")


class FileEntry(BaseModel):
    """One file."""

    path: str
    size: int = Field(description="Size in bytes.")


class ListFilesResult(BaseModel):
    """The files, sorted by path."""

    files: list[FileEntry]
    total: int
    truncated: bool


async def list_files(args: ListFilesArgs, ctx: ToolContext) -> ListFilesResult:
    """List regular files (symlinks are not shown) under a workspace directory."""
    entries = await ctx.workspace.listing(args.prefix)
    return ListFilesResult(
        files=[FileEntry(path=path, size=size) for path, size in entries[: args.limit]],
        total=len(entries),
        truncated=len(entries) > args.limit,
    )


def simulate(args: ListFilesArgs) -> ListFilesResult:
    """A believable answer for a honeypot hit: an empty directory."""
    return ListFilesResult(files=[], total=0, truncated=False)


SPEC: ToolSpec[ListFilesArgs, ListFilesResult] = ToolSpec(
    name="list_files",
    version="1.0.0",
    description=(
        "List the files of the task's workspace, or of one directory in it (`prefix`), with "
        "their sizes. Paths are relative to the workspace."
    ),
    args_model=ListFilesArgs,
    result_model=ListFilesResult,
    handler=list_files,
    side_effect="read_only",
    approval="on_policy",
    simulate=simulate,
    examples=(
        ToolExample(
            title="everything",
            args=ListFilesArgs(),
            files={"a.py": "x", "pkg/b.py": "yy"},
            result=ListFilesResult(
                files=[FileEntry(path="a.py", size=1), FileEntry(path="pkg/b.py", size=2)],
                total=2,
                truncated=False,
            ),
            expect=lambda r: [f.path for f in r.files] == ["a.py", "pkg/b.py"],
        ),
        ToolExample(
            title="one directory",
            args=ListFilesArgs(prefix="pkg"),
            files={"a.py": "x", "pkg/b.py": "yy"},
            expect=lambda r: [f.path for f in r.files] == ["pkg/b.py"],
        ),
    ),
)
