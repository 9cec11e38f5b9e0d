"""Repositories through the served API: uploads and names on the façade, files on native runs.

A served caller is hostile: an upload with a link or a path out of the workspace, one over the
operator's caps, a repository name the operator does not offer, or a native run whose input
carries files over the caps are each refused with a status and one line that says why, and no
task or run is started. The server is `langgraph dev` with the façade mounted, as a deployment
runs it (`tests.integration.api.conftest.run_api_server`).
"""

from __future__ import annotations

import base64
import io
import json
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.api.conftest import KEYS, ApiServer, run_api_server
from tests.integration.api.test_facade import wait_for_status
from tests.integration.test_langgraph_server import approval_flow_rules

HEADERS = {"x-api-key": KEYS["bob"]}


def _tar(members: dict[str, bytes], links: dict[str, str] | None = None) -> str:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            archive.addfile(info)
    return base64.b64encode(buffer.getvalue()).decode()


def _zip(members: dict[str, bytes]) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return base64.b64encode(buffer.getvalue()).decode()


REPO_FILES = {
    "pkg/__init__.py": b"",
    "pkg/calc.py": b"def add(a, b):\n    return a - b\n",
    "tests/test_calc.py": (
        b"from pkg.calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    ),
}
PATCH = """\
--- a/pkg/calc.py
+++ b/pkg/calc.py
@@ -1,2 +1,2 @@
 def add(a, b):
-    return a - b
+    return a + b
"""


def _call(name: str, **args: Any) -> dict[str, Any]:
    return {"name": name, "args": args}


FIXING_RULES: list[dict[str, Any]] = [
    {"role": "react", "when": ['"passed": true'], "tool_calls": [_call("finish", summary="fixed")]},
    {"role": "react", "when": ['"action": "modified"'], "tool_calls": [_call("run_repo_tests")]},
    {"role": "react", "when": ["return a - b"], "tool_calls": [_call("apply_patch", patch=PATCH)]},
    {"role": "react", "tool_calls": [_call("read_file", path="pkg/calc.py")]},
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    tmp = tmp_path_factory.mktemp("repo_api")
    offered = tmp / "offered"
    (offered / "calc").mkdir(parents=True)
    for name in ("a.py", "b.py", "c.py", "d.py"):
        (offered / "calc" / name).write_text("X = 1\n")
    env = {
        "STRATEGOS_REPO_ROOTS": json.dumps({"too-big": str(offered)}),
        "STRATEGOS_REPO_MAX_FILES": "3",
        "STRATEGOS_REPO_MAX_BYTES": "2000",
        "STRATEGOS_REPO_UPLOAD_MAX_BYTES": "4000",
    }
    rules = [*FIXING_RULES, *approval_flow_rules()]
    with run_api_server(tmp, rules, extra_env=env) as served:
        yield served


REFUSED: list[tuple[str, dict[str, Any], int, str, str]] = [
    (
        "link",
        {"archive_base64": _tar({"a.py": b"x"}, {"b.py": "/etc/passwd"})},
        422,
        "bad_repository",
        "'b.py' in the upload is a link",
    ),
    ("dotdot", {"archive_base64": _tar({"../../x.py": b"x"})}, 422, "bad_repository", "'..'"),
    (
        "absolute",
        {"archive_base64": _zip({"/etc/x.py": b"x"})},
        422,
        "bad_repository",
        "is absolute",
    ),
    (
        "files_cap",
        {"archive_base64": _zip({f"m{i}.py": b"x" for i in range(4)})},
        413,
        "repository_too_large",
        "more than 3 files",
    ),
    (
        "bytes_cap",
        {"archive_base64": _zip({"a.py": b"x = 1\n" * 500})},
        413,
        "repository_too_large",
        "larger than 2000 bytes",
    ),
    (
        "upload_cap",
        {"archive_base64": base64.b64encode(b"\0" * 5000).decode()},
        413,
        "repository_too_large",
        "4000-byte cap",
    ),
    ("not_base64", {"archive_base64": "%%%"}, 422, "bad_repository", "not valid base64"),
    ("unknown_name", {"name": "etc"}, 422, "bad_repository", "not a repository this server"),
    ("named_over_cap", {"name": "too-big"}, 413, "repository_too_large", "more than 3 files"),
]


@pytest.mark.parametrize(
    ("repository", "status", "code", "words"),
    [case[1:] for case in REFUSED],
    ids=[case[0] for case in REFUSED],
)
async def test_a_repository_the_server_must_not_take_is_refused_and_starts_no_task(
    server: ApiServer, repository: dict[str, Any], status: int, code: str, words: str
) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        before = (await http.get("/v1/tasks", headers=HEADERS)).json()["tasks"]
        response = await http.post(
            "/v1/tasks", json={"goal": "fix it", "repository": repository}, headers=HEADERS
        )
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert error["code"] == code and words in error["message"], error
        assert (await http.get("/v1/tasks", headers=HEADERS)).json()["tasks"] == before


async def test_a_host_path_is_not_a_repository_name(server: ApiServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        for name in ("/etc", "../offered", str(Path.home())):
            response = await http.post(
                "/v1/tasks", json={"goal": "x", "repository": {"name": name}}, headers=HEADERS
            )
            assert response.status_code == 422, response.text
        both = {"name": "too-big", "archive_base64": _tar({"a.py": b"x"})}
        response = await http.post(
            "/v1/tasks", json={"goal": "x", "repository": both}, headers=HEADERS
        )
        assert response.status_code == 422 and "exactly one" in response.text


@pytest.mark.parametrize(
    ("run_input", "status", "words"),
    [
        ({"files": {f"m{i}.py": "x" for i in range(4)}}, 413, "more than 3 files"),
        ({"repo_files": {"../../etc/passwd": "x"}}, 422, "'..'"),
        ({"files": {"a.py": "x" * 2001}}, 413, "larger than 2000 bytes"),
    ],
    ids=["files_cap", "dotdot", "bytes_cap"],
)
async def test_a_native_run_with_files_over_the_caps_is_refused(
    server: ApiServer, run_input: dict[str, Any], status: int, words: str
) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        thread = (await http.post("/threads", json={}, headers=HEADERS)).json()
        request = {"assistant_id": "coding_team", "input": {"goal": "fix it", **run_input}}
        response = await http.post(
            f"/threads/{thread['thread_id']}/runs", json=request, headers=HEADERS
        )
        assert response.status_code == status, response.text
        assert words in response.text
        runs = await http.get(f"/threads/{thread['thread_id']}/runs", headers=HEADERS)
        assert runs.json() == []


async def test_an_uploaded_repository_is_fixed_and_its_patch_delivered_after_approval(
    server: ApiServer,
) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        body = {
            "goal": "tests/test_calc.py fails; fix the package.",
            "repository": {"archive_base64": _tar(REPO_FILES)},
        }
        created = await http.post("/v1/tasks", json=body, headers=HEADERS)
        assert created.status_code == 201, created.text
        task_id = created.json()["task_id"]
        waiting = await wait_for_status(http, server, task_id, "bob", {"waiting_for_approval"})
        assert "+    return a + b" in json.dumps(waiting["pending_approval"])
        events = (await http.get(f"/v1/tasks/{task_id}/events", headers=HEADERS)).json()
        started = events["events"][0]["data"]
        assert started["repository"]["files"] == 3

        answer = {"approved": True, "comment": ""}
        approved = await http.post(f"/v1/tasks/{task_id}/approve", json=answer, headers=HEADERS)
        assert approved.status_code == 200, approved.text
        done = await wait_for_status(http, server, task_id, "bob", {"completed", "failed"})
        assert done["status"] == "completed", server.tail()
        assert done["result"]["status"] == "delivered"
        delivered = Path(str(done["result"]["destination"]))
        assert "+    return a + b" in (delivered / "patch.diff").read_text()
        assert (delivered / "files/pkg/calc.py").read_text() == "def add(a, b):\n    return a + b\n"
