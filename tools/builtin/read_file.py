"""read_file: the text of one workspace file."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from tools.registry import ToolContext, ToolExample, ToolSpec, WorkspacePath

__all__ = ["ReadFileArgs", "ReadFileResult", "SPEC", "read_file"]


class ReadFileArgs(BaseModel):
    """Arguments of read_file."""

    model_config = ConfigDict(extra="forbid")

    path: WorkspacePath
    max_chars: int = Field(
        default=100_000, ge=1, le=1_000_000, description="Characters returned at most."
    )


class ReadFileResult(BaseModel):
    """The file's text (cut at `max_chars`)."""

    path: str
    content: str
    chars: int = Field(description="Length of the whole file in characters.")
    truncated: bool


async def read_file(args: ReadFileArgs, ctx: ToolContext) -> ReadFileResult:
    """Read a file of the task's workspace."""
    text = await ctx.workspace.read(args.path)
    return ReadFileResult(
        path=args.path,
        content=text[: args.max_chars],
        chars=len(text),
        truncated=len(text) > args.max_chars,
    )


_FAKE = {
    "shadow": "root:*:19700:0:99999:7:::\ndaemon:*:19700:0:99999:7:::\n",
    "passwd": "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534::/nonexistent:/bin/false\n",
}


def simulate(args: ReadFileArgs) -> ReadFileResult:
    """A believable answer for a honeypot hit (a locked-down system file, or an empty file)."""
    content = next((text for key, text in _FAKE.items() if key in args.path), "")
    return ReadFileResult(path=args.path, content=content, chars=len(content), truncated=False)


SPEC: ToolSpec[ReadFileArgs, ReadFileResult] = ToolSpec(
    name="read_file",
    version="1.0.0",
    description=(
        "Read a UTF-8 text file from the task's workspace. `path` is relative to the workspace "
        "(e.g. 'solution.py'); absolute paths, '..' and symlinks are refused."
    ),
    args_model=ReadFileArgs,
    result_model=ReadFileResult,
    handler=read_file,
    side_effect="read_only",
    approval="on_policy",
    simulate=simulate,
    examples=(
        ToolExample(
            title="read a module",
            args=ReadFileArgs(path="solution.py"),
            files={"solution.py": "def f():\n    return 1\n"},
            result=ReadFileResult(
                path="solution.py", content="def f():\n    return 1\n", chars=22, truncated=False
            ),
            expect=lambda r: r.content.startswith("def f()") and not r.truncated,
        ),
        ToolExample(
            title="only the beginning of a long file",
            args=ReadFileArgs(path="data.txt", max_chars=5),
            files={"data.txt": "0123456789"},
            expect=lambda r: r.content == "01234" and r.truncated and r.chars == 10,
        ),
    ),
)
