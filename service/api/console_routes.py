"""The web console (`/console`): a static page and one script, served from the package.

The console is a plain client of the task API: the browser keeps the tenant's key in its tab
and sends it as `Authorization: Bearer` (and as the WebSocket's first message, since a browser
cannot set a WebSocket's headers). So these routes need no key and hold no data; they serve
three packaged files — no build step, no CDN — with a Content-Security-Policy that lets the
page run only its own script and talk only to its own origin, so text the model wrote can never
run as code even if a bug rendered it as HTML. They stay out of the OpenAPI document.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from service.api.errors import ApiError

CONSOLE_DIR = Path(__file__).with_name("console")
ASSETS = {
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("")
async def console_page() -> FileResponse:
    """The console's single page (its views are chosen in the browser, from the URL's hash)."""
    return FileResponse(
        CONSOLE_DIR / "index.html", media_type="text/html; charset=utf-8", headers=HEADERS
    )


@router.get("/")
async def console_slash() -> RedirectResponse:
    """`/console/` is the same page; redirect so its asset paths stay the same."""
    return RedirectResponse("/console", status_code=307)


@router.get("/{name}")
async def console_asset(name: str) -> FileResponse:
    """One of the console's own files, by name only: nothing else on disk is reachable."""
    media_type = ASSETS.get(name)
    if media_type is None:
        raise ApiError(404, "not_found", "no such console file")
    return FileResponse(CONSOLE_DIR / name, media_type=media_type, headers=HEADERS)
