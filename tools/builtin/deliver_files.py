"""deliver_files: write a task's approved result to its destination, once.

Delivery is the team's effect on the world outside the sandbox: files land where a human (or
the next system) picks them up. It always needs approval. It is idempotent by construction: a
file that already holds the delivered text is left alone, so a delivery re-run after a crash in
its middle writes only what the first attempt did not, and no file is written twice. A
completed delivery is replayed from the gateway's ledger, never run again. The workspace given
to the tool is the destination directory.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tools.errors import ToolError
from tools.registry import ToolContext, ToolExample, ToolSpec, WorkspacePath

__all__ = ["SPEC", "DeliverFilesArgs", "DeliverFilesResult", "DeliveredFile", "deliver_files"]

MAX_FILES = 200


class DeliveredFile(BaseModel):
    """One file of the delivery."""

    model_config = ConfigDict(extra="forbid")

    path: WorkspacePath
    content: str = Field(max_length=1_000_000, description="The whole text of the file.")


class DeliverFilesArgs(BaseModel):
    """Arguments of deliver_files."""

    model_config = ConfigDict(extra="forbid")

    files: list[DeliveredFile] = Field(min_length=1, max_length=MAX_FILES)
    summary: str = Field(default="", max_length=2000, description="What is being delivered.")

    @model_validator(mode="after")
    def _unique_paths(self) -> DeliverFilesArgs:
        paths = [item.path for item in self.files]
        repeated = sorted({p for p in paths if paths.count(p) > 1})
        if repeated:
            raise ValueError(f"each path may appear once; repeated: {', '.join(repeated)}")
        return self


class DeliverFilesResult(BaseModel):
    """What was delivered."""

    files: list[str] = Field(description="Delivered paths, sorted.")
    bytes_written: int
    unchanged: list[str] = Field(
        default_factory=list, description="Paths that already held the delivered text."
    )


async def _holds(ctx: ToolContext, path: str, content: str) -> bool:
    if not await ctx.workspace.exists(path):
        return False
    try:
        return await ctx.workspace.read(path) == content
    except ToolError:  # not a readable regular file: the write below reports why
        return False


async def deliver_files(args: DeliverFilesArgs, ctx: ToolContext) -> DeliverFilesResult:
    """Write every file that does not already hold its text (each one atomically)."""
    total = 0
    unchanged: list[str] = []
    for item in sorted(args.files, key=lambda f: f.path):
        if await _holds(ctx, item.path, item.content):
            unchanged.append(item.path)
            continue
        await ctx.workspace.write(item.path, item.content)
        total += len(item.content.encode())
    return DeliverFilesResult(
        files=sorted(f.path for f in args.files), bytes_written=total, unchanged=unchanged
    )


def simulate(args: DeliverFilesArgs) -> DeliverFilesResult:
    """A believable answer for a honeypot hit."""
    return DeliverFilesResult(
        files=sorted(f.path for f in args.files),
        bytes_written=sum(len(f.content.encode()) for f in args.files),
    )


SPEC: ToolSpec[DeliverFilesArgs, DeliverFilesResult] = ToolSpec(
    name="deliver_files",
    version="1.0.0",
    description=(
        "Deliver the task's result: write each of `files` (relative path and full text) to the "
        "task's destination. Always asks a human first; files that already hold their text "
        "are left alone."
    ),
    args_model=DeliverFilesArgs,
    result_model=DeliverFilesResult,
    handler=deliver_files,
    side_effect="idempotent",
    approval="always",
    simulate=simulate,
    examples=(
        ToolExample(
            title="deliver a module and its report",
            args=DeliverFilesArgs(
                files=[
                    DeliveredFile(path="solution.py", content="def f():\n    return 1\n"),
                    DeliveredFile(path="REPORT.json", content="{}"),
                ],
                summary="f returns 1",
            ),
            result=DeliverFilesResult(files=["REPORT.json", "solution.py"], bytes_written=24),
            expect=lambda r: r.files == ["REPORT.json", "solution.py"] and r.bytes_written == 24,
        ),
        ToolExample(
            title="replace an earlier delivery",
            args=DeliverFilesArgs(files=[DeliveredFile(path="solution.py", content="X = 2\n")]),
            files={"solution.py": "X = 1\n"},
            expect=lambda r: r.files == ["solution.py"] and r.bytes_written == 6,
        ),
        ToolExample(
            title="finish a delivery interrupted halfway",
            args=DeliverFilesArgs(
                files=[
                    DeliveredFile(path="a.py", content="A = 1\n"),
                    DeliveredFile(path="b.py", content="B = 2\n"),
                ]
            ),
            files={"a.py": "A = 1\n"},
            expect=lambda r: r.unchanged == ["a.py"] and r.bytes_written == 6,
        ),
    ),
)
