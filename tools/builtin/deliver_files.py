"""deliver_files: write a task's approved result to its destination, once.

Delivery is the team's side effect on the world outside the sandbox: files land where a human
(or the next system) picks them up. It is a `side_effect` that always needs approval, so the
gateway asks first and its ledger makes sure a crash between the write and the next checkpoint
does not write twice. The workspace given to the tool is the destination directory.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

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


async def deliver_files(args: DeliverFilesArgs, ctx: ToolContext) -> DeliverFilesResult:
    """Write every file (each one atomically) into the destination workspace."""
    total = 0
    for item in sorted(args.files, key=lambda f: f.path):
        await ctx.workspace.write(item.path, item.content)
        total += len(item.content.encode())
    return DeliverFilesResult(files=sorted(f.path for f in args.files), bytes_written=total)


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
        "task's destination. Always asks a human first; runs at most once per call."
    ),
    args_model=DeliverFilesArgs,
    result_model=DeliverFilesResult,
    handler=deliver_files,
    side_effect="side_effect",
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
            expect=lambda r: r.files == ["solution.py"],
        ),
    ),
)
