"""The task API's interactive docs, served offline, and what its OpenAPI says beyond routes.

FastAPI's default `/docs` page loads Swagger UI from a CDN, which a machine without Internet
access (or an operator who allows none) cannot reach. The page here loads the same Swagger UI
from the `swagger-ui-bundle` package, under `/v1/docs/assets`. The OpenAPI document also
declares both ways to authenticate (`x-api-key`, `Authorization: Bearer`) and, since OpenAPI 3
has no WebSocket operations, describes the event stream under `x-websockets`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

DOCS = "/v1/docs"
ASSETS = f"{DOCS}/assets"
SECURITY_SCHEMES: dict[str, Any] = {
    "ApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
    "Bearer": {"type": "http", "scheme": "bearer", "description": "The same API key."},
}
WEBSOCKETS: dict[str, Any] = {
    "/v1/tasks/{task_id}/stream": {
        "summary": "Follow a task's events live (WebSocket)",
        "description": (
            "Connect with `x-api-key` or `Authorization: Bearer`, or send "
            '`{"api_key": …, "last_event_id": N}` as the first message. The server sends '
            '`{"type": "event", …}` messages (the same events as GET …/events, ids increasing '
            'by one), then `{"type": "end", "status": …}` when the task ends; reconnect with '
            "`last_event_id` to resume without gaps or duplicates."
        ),
    }
}


def document(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with the authentication schemes and the WebSocket stream described."""
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    schema["security"] = [{"ApiKey": []}, {"Bearer": []}]
    schema["x-websockets"] = WEBSOCKETS
    return schema


def install(app: FastAPI, openapi_url: str) -> None:
    """Serve Swagger UI at `/v1/docs` from the package's files (no CDN)."""
    app.mount(ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")

    @app.get(DOCS, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} — docs",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
        )
