"""The web console's files, served by the task API in-process: no CDN, no key, not in OpenAPI."""

from __future__ import annotations

import httpx

from service.api.app import app


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


async def test_the_console_page_and_its_assets_are_served_from_the_package() -> None:
    async with client() as http:
        page = await http.get("/console")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "/console/console.js" in page.text and "/console/console.css" in page.text
        assert "http://" not in page.text and "https://" not in page.text  # nothing remote
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "default-src 'none'" in policy
        script = await http.get("/console/console.js")
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("text/javascript")
        assert "innerHTML" not in script.text  # model text is only ever set as textContent
        css = await http.get("/console/console.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


async def test_only_the_consoles_own_files_are_reachable() -> None:
    async with client() as http:
        for name in ("index.html.bak", "..%2Fapp.py", "%2E%2E%2Fconsole_routes.py", "x.py"):
            assert (await http.get(f"/console/{name}")).status_code == 404
        slash = await http.get("/console/")
        assert slash.status_code == 307 and slash.headers["location"] == "/console"


async def test_the_console_is_not_part_of_the_openapi_document() -> None:
    async with client() as http:
        spec = (await http.get("/v1/openapi.json")).json()
    assert not [path for path in spec["paths"] if path.startswith("/console")]
