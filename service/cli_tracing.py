"""LangSmith tracing for CLI runs: on when configured, but never a reason to hang at exit.

With tracing on and LangSmith unreachable (offline, a firewall, a typo in the endpoint), the
LangSmith client retries every batch and flushes at exit, which adds ~12 s to every command.
One quick probe before the run decides instead: unreachable means one warning and no tracing.
"""

from __future__ import annotations

import httpx
import langsmith
from langsmith import utils as ls_utils

from service.cli_output import warn

PROBE_TIMEOUT_S = 3.0


def reachable(url: str) -> bool:
    """Whether anything answers HTTP at `url` (any status counts: it is there)."""
    try:
        httpx.get(f"{url}/info", timeout=PROBE_TIMEOUT_S)
    except httpx.HTTPError:
        return False
    return True


def check_tracing() -> None:
    """Turn LangSmith tracing off, with one warning, when it is on but cannot be reached."""
    if ls_utils.tracing_is_enabled() is not True:
        return
    url = ls_utils.get_api_url(None)
    if reachable(url):
        return
    langsmith.configure(enabled=False)
    warn(f"LangSmith at {url} is unreachable; tracing is off for this run")
