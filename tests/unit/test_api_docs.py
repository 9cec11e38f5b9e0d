"""The task API in-process: offline docs, its OpenAPI, and refusals counted for Prometheus."""

from __future__ import annotations

import httpx

from service.api.app import app


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


async def test_the_docs_page_loads_its_assets_from_the_server_not_a_cdn() -> None:
    async with client() as http:
        page = await http.get("/v1/docs")
        assert page.status_code == 200
        assert "cdn" not in page.text.lower()
        assert "/v1/docs/assets/swagger-ui-bundle.js" in page.text
        script = await http.get("/v1/docs/assets/swagger-ui-bundle.js")
        assert script.status_code == 200 and len(script.content) > 100_000
        css = await http.get("/v1/docs/assets/swagger-ui.css")
        assert css.status_code == 200


async def test_the_openapi_names_both_keys_the_stream_and_only_the_task_api() -> None:
    async with client() as http:
        spec = (await http.get("/v1/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {"type": "apiKey", "in": "header", "name": "x-api-key"}
    assert schemes["Bearer"]["scheme"] == "bearer"
    assert "/v1/tasks/{task_id}/stream" in spec["x-websockets"]
    assert "/v1/tasks/{task_id}/files" in spec["paths"]
    assert all(path.startswith("/v1/") for path in spec["paths"])


async def test_a_refused_request_is_counted_by_its_error_code() -> None:
    from prometheus_client import REGISTRY

    def refused() -> float:
        labels = {"code": "unauthorized"}
        return REGISTRY.get_sample_value("strategos_api_errors_total", labels) or 0.0

    from service.api.tenancy import close_key_stores
    from service.rate_limits import close_limit_stores

    before = refused()
    try:
        async with client() as http:
            answer = await http.get("/v1/tasks", headers={"x-api-key": "not-a-key"})
    finally:
        # The app's lifespan is not run here, so close what the request opened (the key
        # store's database thread would keep the test process from exiting).
        await close_key_stores()
        await close_limit_stores()
    assert answer.status_code == 401
    assert refused() - before == 1
