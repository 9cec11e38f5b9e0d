"""`strategos dlq`: the task API's dead letters from a terminal (list, replay, resolve)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import httpx
import typer
from rich.table import Table

from service.cli_output import console, fail
from service.exit_codes import ExitCode

DEFAULT_PORT = 2026
"""The port `strategos serve` listens on by default; `dlq` talks to it unless told otherwise."""
DEFAULT_API_URL = f"http://127.0.0.1:{DEFAULT_PORT}"

dlq = typer.Typer(no_args_is_help=True, help="Failed runs of the task API: list, replay, resolve.")

ApiUrlOpt = Annotated[
    str,
    typer.Option(
        "--url", envvar="STRATEGOS_API_URL", help="Base URL of the task API (the server)."
    ),
]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--api-key", envvar="STRATEGOS_API_KEY", help="Tenant API key.", show_default=False
    ),
]


def _api(method: str, url: str, api_key: str | None, path: str, body: Any = None) -> Any:
    """Call the task API; its `{"error": {code, message}}` becomes a one-line CLI error."""
    headers = {"x-api-key": api_key} if api_key else {}
    try:
        response = httpx.request(
            method, url.rstrip("/") + path, json=body, headers=headers, timeout=60.0
        )
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach the task API at {url}: {exc}") from exc
    if response.is_success:
        return response.json()
    try:
        detail = response.json()["error"]
        message = f"{detail['message']} ({detail['code']}, HTTP {response.status_code})"
    except (ValueError, KeyError, TypeError):
        message = f"HTTP {response.status_code}: {response.text[:200]}"
    raise fail(message)


@dlq.command("list")
def dlq_list(
    url: ApiUrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    status: Annotated[
        str | None, typer.Option(help="open, replayed or resolved (default: all).")
    ] = "open",
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON page.")] = False,
) -> None:
    """List dead letters (open ones by default; `--status ''` for all)."""
    query = f"?limit={limit}&offset={offset}" + (f"&status={status}" if status else "")
    page = _api("GET", url, api_key, "/v1/dead-letters" + query)
    if as_json:
        console.print_json(json.dumps(page))
        return
    table = Table()
    for name in ("id", "task", "status", "attempts"):
        table.add_column(name, no_wrap=True, min_width=len(name))  # ids are to be copied whole
    for name in ("error", "created", "note"):
        table.add_column(name)
    for letter in page["dead_letters"]:
        table.add_row(
            letter["id"],
            letter["task_id"],
            letter["status"],
            str(letter["attempts"]),
            letter["error"].splitlines()[0][:60] if letter["error"] else "",
            letter["created_at"][:19],
            letter.get("note") or "",
        )
    console.print(table)
    if page.get("next_offset") is not None:
        console.print(f"more: --offset {page['next_offset']}")


@dlq.command("replay")
def dlq_replay(
    letter_id: Annotated[str, typer.Argument(help="The dead letter's id.")],
    url: ApiUrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    input_json: Annotated[
        str | None,
        typer.Option("--input", help='Edited task input as JSON, e.g. \'{"goal": "..."}\'.'),
    ] = None,
) -> None:
    """Resume the failed task from its last checkpoint, optionally with edited input."""
    body: dict[str, Any] = {}
    if input_json is not None:
        try:
            body["input"] = json.loads(input_json)
        except json.JSONDecodeError as exc:
            raise fail(f"--input is not valid JSON: {exc}", ExitCode.USAGE) from exc
    result = _api("POST", url, api_key, f"/v1/dead-letters/{letter_id}/replay", body)
    console.print(f"replayed {result['dead_letter']['id']}: run {result['run_id']}")


@dlq.command("resolve")
def dlq_resolve(
    letter_id: Annotated[str, typer.Argument(help="The dead letter's id.")],
    url: ApiUrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    note: Annotated[str, typer.Option(help="Why no replay is needed.")] = "",
) -> None:
    """Close a dead letter without replaying it."""
    letter = _api("POST", url, api_key, f"/v1/dead-letters/{letter_id}/resolve", {"note": note})
    console.print(f"resolved {letter['id']}")
