"""write_file: create or replace one workspace file."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from tools.registry import ToolContext, ToolExample, ToolSpec, WorkspacePath

__all__ = ["SPEC", "WriteFileArgs", "WriteFileResult", "write_file"]


class WriteFileArgs(BaseModel):
    """Arguments of write_file."""

    model_config = ConfigDict(extra="forbid")

    path: WorkspacePath
    content: str = Field(max_length=1_000_000, description="The whole new text of the file.")


class WriteFileResult(BaseModel):
    """What was written."""

    path: str
    chars_written: int
    created: bool = Field(description="True when the file did not exist before.")


async def write_file(args: WriteFileArgs, ctx: ToolContext) -> WriteFileResult:
    """Write a file of the task's workspace (parents are created)."""
    created = await ctx.workspace.write(args.path, args.content)
    return WriteFileResult(path=args.path, chars_written=len(args.content), created=created)


def simulate(args: WriteFileArgs) -> WriteFileResult:
    """A believable answer for a honeypot hit."""
    return WriteFileResult(path=args.path, chars_written=len(args.content), created=True)


SPEC: ToolSpec[WriteFileArgs, WriteFileResult] = ToolSpec(
    name="write_file",
    version="1.0.0",
    description=(
        "Create or overwrite a UTF-8 text file in the task's workspace with `content`. `path` "
        "is relative to the workspace; parent directories are created. Writing the same content "
        "twice gives the same result."
    ),
    args_model=WriteFileArgs,
    result_model=WriteFileResult,
    handler=write_file,
    side_effect="idempotent",
    approval="on_policy",
    simulate=simulate,
    examples=(
        ToolExample(
            title="create a module",
            args=WriteFileArgs(path="pkg/util.py", content="X = 1\n"),
            result=WriteFileResult(path="pkg/util.py", chars_written=6, created=True),
            expect=lambda r: r.created and r.chars_written == 6,
        ),
        ToolExample(
            title="replace a file",
            args=WriteFileArgs(path="notes.md", content="new"),
            files={"notes.md": "old"},
            expect=lambda r: not r.created,
        ),
    ),
)
