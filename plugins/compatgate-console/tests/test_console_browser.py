"""The console in a real browser: Debian's headless Chromium driven by Playwright.

An operator signs in, creates a key (copying it with the button), real requests go through the
gateway with it and appear in the request log and the chart, the key is revoked and then
refused; its holder signs in and cannot reach operator pages. Every page is screenshotted
(desktop and phone width); no page logs a Content-Security-Policy violation or a script error.
Screenshots go to ``$COMPATGATE_CONSOLE_SCREENSHOTS`` when set (``docs/console`` in the
repository is made this way), else to the test's temporary folder.

Without Chromium the test is skipped, except under ``CI=true`` where it fails (.ci/run installs
it: ``.ci/install-chromium``)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from console_support import ADMIN_KEY, chat, console_config, serve_console

CHROMIUM = os.environ.get("COMPATGATE_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _browser_or_skip() -> str:
    if Path(CHROMIUM).exists() or shutil.which(CHROMIUM):
        return CHROMIUM
    message = f"no Chromium at {CHROMIUM} (apt-get install chromium chromium-driver, or .ci/install-chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def browser():
    executable = _browser_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def test_operator_and_key_holder_in_a_real_browser(db, upstream, browser, tmp_path):  # browser closes first
    shots = Path(os.environ.get("COMPATGATE_CONSOLE_SCREENSHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []

    def watch(page):
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" and "status of 403" not in m.text
                else None)  # (the holder's visits to operator pages are refused on purpose)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("dialog", lambda d: d.accept())
        return page

    with serve_console(console_config(upstream[1], db)) as (_, url):
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
        page = watch(context.new_page())
        page.goto(f"{url}/console/")
        assert page.url.endswith("/console/signin")
        page.screenshot(path=str(shots / "signin.png"))
        page.get_by_label("Admin key or API key").fill(ADMIN_KEY)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/console/overview")

        # create a key; its secret is shown once and copied with the button
        page.get_by_role("link", name="Keys", exact=True).click()
        page.get_by_role("link", name="Create a key").click()
        page.get_by_label("Name", exact=True).fill("browser-test")
        page.get_by_label("Owner", exact=True).fill("qa@example.com")
        page.get_by_label("Budget").fill("3")
        page.get_by_role("button", name="Create the key").click()
        secret = page.get_by_label("API key for browser-test").input_value()
        assert secret.startswith("sk-cg-")
        page.get_by_role("button", name="Copy key").click()
        page.get_by_role("status").filter(has_text="Copied").wait_for()
        assert page.evaluate("navigator.clipboard.readText()") == secret
        page.screenshot(path=str(shots / "key-created.png"))
        key_id = secret.split("-")[2]

        # real requests through the gateway with it
        for i in range(6):
            assert chat(url, secret, "gpt-4o" if i % 2 else "gpt-4o-mini", f"request number {i}").status_code == 200
        assert chat(url, secret, "broken-model").status_code == 500

        # they appear in the request log (filtered by key) and in the chart
        deadline = time.monotonic() + 20
        while True:
            page.goto(f"{url}/console/log?key={key_id}")
            if page.locator("table.log tbody tr:not(.detail)").count() >= 7:
                break
            assert time.monotonic() < deadline, "the requests did not reach the log"
            time.sleep(0.2)
        rows = page.locator("table.log tbody tr:not(.detail)")
        assert "broken-model" in rows.nth(0).inner_text() and "500" in rows.nth(0).inner_text()
        assert "stop" in rows.nth(1).inner_text()
        page.get_by_label("Status").select_option("error")
        page.get_by_role("button", name="Filter").click()
        page.wait_for_url("**status=error**")
        page.locator("table.log tbody tr:not(.detail)").first.wait_for()
        assert page.locator("table.log tbody tr:not(.detail)").count() == 1
        page.screenshot(path=str(shots / "request-log.png"), full_page=True)

        page.goto(f"{url}/console/overview?range=hour&by=model")
        page.locator(".plot canvas").first.wait_for()
        assert page.locator(".plot canvas").count() == 4
        legend = page.locator(".chart").first.inner_text()
        assert "gpt-4o" in legend and "gpt-4o-mini" in legend
        assert page.locator(".stats dd").first.inner_text() == "7"
        page.screenshot(path=str(shots / "overview.png"), full_page=True)
        page.goto(f"{url}/console/keys/{key_id}")
        page.locator(".plot canvas").first.wait_for()
        assert "curl" in page.locator("#example-curl").inner_text() and secret not in page.content()
        page.screenshot(path=str(shots / "key.png"), full_page=True)
        page.goto(f"{url}/console/keys")
        page.screenshot(path=str(shots / "keys.png"), full_page=True)
        for name in ("models", "providers"):
            page.goto(f"{url}/console/{name}")
            page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

        # the key holder: their own page, and no operator page
        holder_context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
        holder = watch(holder_context.new_page())
        holder.goto(f"{url}/console/signin")
        holder.get_by_label("Admin key or API key").fill(secret)
        holder.get_by_role("button", name="Sign in").click()
        holder.wait_for_url("**/console/me")
        holder.locator(".plot canvas").first.wait_for()
        assert "browser-test" in holder.content() and secret not in holder.content()
        width = holder.evaluate("document.documentElement.scrollWidth")
        assert width <= 392, f"the page is wider than the phone: {width}px"
        holder.screenshot(path=str(shots / "holder-phone.png"), full_page=True)
        for path in ("overview", "keys", f"keys/{key_id}", "log", "models", "providers"):
            response = holder.goto(f"{url}/console/{path}")
            assert response is not None and response.status == 403, path
        assert holder.get_by_role("navigation", name="Main").get_by_role("link").all_inner_texts() == [
            "My key", "My requests"]

        # revoke the key: refused by the gateway, and the holder's session ends
        page.goto(f"{url}/console/keys/{key_id}")
        page.get_by_role("button", name="Revoke").click()
        page.wait_for_url(f"**/console/keys/{key_id}")
        assert "deleted" in page.locator(".stats").inner_text()
        refused = chat(url, secret)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
        holder.goto(f"{url}/console/me")
        assert holder.url.endswith("/console/signin")
        holder_context.close()
        context.close()
    assert not problems, problems
