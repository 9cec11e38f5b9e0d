"""The web console end to end: headless Chromium driving `/console` on a real Aegra instance.

One `strategos serve` over a fresh PostgreSQL database and a Redis prefix, with the scripted
model, serves the task API and its console. The browser enters the tenant's key, submits a goal
that pauses for approval, watches the events arrive over the WebSocket, reads the code and its
failing check, approves with a comment and sees the delivered files; an agent key sees the
refusal; a dead letter is replayed from its page.

Screenshots are written only when `STRATEGOS_CONSOLE_SCREENSHOTS` names a folder (the README's
are made that way). Playwright drives the machine's Chromium (`make system-deps` installs it);
Playwright's own browser download is never used.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, async_playwright, expect

from tests.conftest import cases_reply, coder_reply, review_reply, write_script
from tests.integration.aegra import harness

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HUMAN_KEY = "acme-key-0001"
AGENT_KEY = "acme-bot-0002"  # may submit and watch, not approve
BREAK = "The reviewer is away."
"""In a goal, makes the reviewer's model call fail: the run becomes a dead letter."""
GOAL = harness.GOAL
PLAIN_ADD = harness.PLAIN_ADD
RULES: list[dict[str, Any]] = [
    {"role": "coder", "reply": coder_reply(PLAIN_ADD, "first version")},
    # The team's second test is wrong, so the approval request shows a failing check.
    {"role": "tester", "reply": cases_reply(("add(1, 1)", 2), ("add(2, 2)", 5))},
    {"role": "reviewer", "unless": [BREAK], "reply": review_reply()},
]
WAIT_MS = 120_000
SHOTS = os.environ.get("STRATEGOS_CONSOLE_SCREENSHOTS")


@dataclass(frozen=True)
class Console:
    """The served app's base URL."""

    url: str

    async def api(
        self, method: str, path: str, key: str = HUMAN_KEY, **kwargs: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=self.url, timeout=60.0) as http:
            return await http.request(method, path, headers=headers, **kwargs)

    async def wait_for(self, task_id: str, statuses: set[str]) -> None:
        deadline = time.monotonic() + WAIT_MS / 1000
        while True:
            task = (await self.api("GET", f"/v1/tasks/{task_id}")).json()
            if task["status"] in statuses:
                return
            assert time.monotonic() < deadline, f"task stuck in {task['status']}"
            await asyncio.sleep(0.3)

    async def letters(self, task_id: str, count: int) -> None:
        """Wait until the task has `count` dead letters (written as its runs fail)."""
        deadline = time.monotonic() + WAIT_MS / 1000
        while True:
            page = (await self.api("GET", "/v1/dead-letters", params={"limit": 100})).json()
            found = [d for d in page["dead_letters"] if d["task_id"] == task_id]
            if len(found) >= count:
                return
            assert time.monotonic() < deadline, f"{len(found)} dead letters, not {count}"
            await asyncio.sleep(0.3)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """One Aegra instance with a person's key and an agent's key of the same tenant."""
    tmp = tmp_path_factory.mktemp("console")
    script = write_script(tmp / "script.json", RULES)
    prefix = f"strategos-test-{uuid.uuid4().hex[:8]}"
    # A short data dir: the approval request and the screenshots show the delivery folder.
    with harness.fresh_database() as database_url, TemporaryDirectory(prefix="strategos-") as data:
        env = harness.server_env(Path(data), database_url, script, prefix)
        env["STRATEGOS_API_KEYS"] = f"acme:{HUMAN_KEY}"
        env["STRATEGOS_AGENT_API_KEYS"] = f"acme:{AGENT_KEY}"
        try:
            with harness.serving("console", tmp, env) as instance:
                yield Console(instance.url)
        finally:
            harness.clean_redis(prefix)


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    """A tab of the machine's Chromium, in a fresh profile, at desktop size."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1360, "height": 900})
            yield await context.new_page()
        finally:
            await browser.close()


async def shot(page: Page, name: str) -> None:
    """A screenshot for the docs, when asked for."""
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


async def open_console(page: Page, console: Console, key: str, where: str = "") -> None:
    await page.goto(f"{console.url}/console{where}")
    await page.fill("#api-key", key)
    await page.click("#key-form button[type=submit]")
    await expect(page.locator("#key-state")).to_have_text("key set for this tab")


async def waiting_task(console: Console, goal: str) -> str:
    created = await console.api("POST", "/v1/tasks", json={"goal": goal})
    assert created.status_code == 201, created.text
    task_id: str = created.json()["task_id"]
    await console.wait_for(task_id, {"waiting_for_approval"})
    return task_id


async def test_a_key_that_may_not_approve_sees_the_refusal(page: Page, console: Console) -> None:
    goal = GOAL.replace("the sum", "the sum <b>bold</b>")
    task_id = await waiting_task(console, goal)
    await open_console(page, console, AGENT_KEY, f"#/tasks/{task_id}")
    # The goal's markup is shown as text, never rendered.
    await expect(page.locator("#task-goal")).to_contain_text("<b>bold</b>")
    assert await page.locator("#task-goal b").count() == 0
    await expect(page.locator("#approval")).to_be_visible(timeout=WAIT_MS)
    await page.fill("#approval-comment", "looks fine to me")
    await page.click("#approve-button")
    await expect(page.locator("#approval-error")).to_have_text(
        "this API key may submit and watch tasks but not approve them"
    )
    await expect(page.locator("#task-status")).to_have_text("waiting for approval")
    assert (await console.api("GET", f"/v1/tasks/{task_id}")).json()[
        "status"
    ] == "waiting_for_approval"


async def test_a_dead_letter_is_replayed_from_the_console(page: Page, console: Console) -> None:
    goal = GOAL.replace("the sum.", f"the sum. {BREAK}")
    created = await console.api(
        "POST", "/v1/tasks", json={"goal": goal, "options": {"approve": "auto"}}
    )
    assert created.status_code == 201, created.text
    task_id = created.json()["task_id"]
    await console.letters(task_id, 1)
    await open_console(page, console, HUMAN_KEY, "#/dead-letters")
    row = page.locator("#dlq-table tbody tr", has=page.locator(f"a[href='#/tasks/{task_id}']"))
    await expect(row).to_have_count(1)
    await expect(row.locator(".badge")).to_have_text("open")
    await row.get_by_role("button", name="Replay").click()
    # The replay runs the failed step again, which fails again: the first letter is marked
    # replayed and a second one is opened.
    await expect(row.locator(".badge.status-replayed")).to_have_count(1)
    await console.letters(task_id, 2)
    await page.click("#refresh-dlq")
    await expect(row).to_have_count(2)
    await expect(row.locator(".badge")).to_have_text(["open", "replayed"])
    await expect(page.locator("#dlq-error")).to_be_hidden()
    await shot(page, "dead-letters")


async def test_a_task_is_watched_approved_and_delivered_in_the_browser(
    page: Page, console: Console
) -> None:
    await open_console(page, console, HUMAN_KEY)
    await page.fill("#goal", GOAL)
    await page.select_option("#approve-mode", "ask")
    await page.click("#new-task button[type=submit]")
    await expect(page.locator("#task-view")).to_be_visible()
    task_id = page.url.rsplit("/", 1)[1]
    events = page.locator("#events li")
    await expect(events.first).to_contain_text("task started", timeout=WAIT_MS)

    # The team works, then asks: the events arrive live, the request shows code and checks.
    await expect(page.locator("#approval")).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator("#events")).to_contain_text("wrote · solution.py")
    await expect(page.locator("#events")).to_contain_text("waiting for a human to approve")
    await expect(page.locator("#task-status")).to_have_text("waiting for approval")
    await expect(page.locator("#approval-code figcaption")).to_have_text(["solution.py"])
    await expect(page.locator("#approval-code pre")).to_have_text(PLAIN_ADD)
    await expect(page.locator("#approval-failing")).to_contain_text("add(2, 2) == 5")
    await expect(page.locator("#approval-destination")).to_contain_text(task_id)
    await expect(page.locator("#approval-flags")).to_have_text("none")
    await expect(page.locator("#checks-summary")).to_contain_text("team tests 1/2")
    # The code those checks ran on, shown beside them while the task runs.
    await expect(page.locator("#current-code figcaption")).to_have_text(["solution.py"])
    await expect(page.locator("#current-code pre")).to_have_text(PLAIN_ADD)
    await shot(page, "task-approval")

    await page.fill("#approval-comment", "ship it; the second team test is wrong")
    await page.click("#approve-button")
    await expect(page.locator("#task-status")).to_have_text("completed", timeout=WAIT_MS)
    await expect(page.locator("#events")).to_contain_text(
        "approved by human (acme): ship it; the second team test is wrong"
    )
    await expect(page.locator("#approval")).to_be_hidden()
    await expect(page.locator("#files-list figcaption")).to_have_text(
        ["solution.py"], timeout=WAIT_MS
    )
    await expect(page.locator("#files-list pre")).to_have_text(PLAIN_ADD)
    await expect(page.locator("#files-destination")).to_contain_text("Delivered to")
    await expect(page.locator("#stream-state")).to_have_text("ended: completed", timeout=WAIT_MS)
    await shot(page, "task-delivered")

    await page.click("#nav-tasks")
    row = page.locator("#task-table tbody tr", has=page.locator(f"a[href='#/tasks/{task_id}']"))
    await expect(row.locator(".badge")).to_have_text("completed")
    await expect(row).to_contain_text("Write add(a, b) returning the sum.")
    await shot(page, "task-list")
