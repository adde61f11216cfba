"""The dashboard in a real browser: headless Chromium (Debian's ``chromium``) driven by
Playwright, against ``flagmw serve`` started by the test on 127.0.0.1 over a real SQLite
store. Sign in, kill a tool with a reason, see it in the overrides panel, see a kill made
with the CLI appear without a reload, end it, view a tenant, view a diff.

Screenshots are written to ``tmp_path``; with ``FLAGMW_CONSOLE_SCREENSHOTS=docs/img`` they
go there instead (how docs/console.md's images are made).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import FLAGS_YAML, snapshot_part

from flagmw import FlagClient, FlagRegistry, SQLiteStore
from flagmw.stores.tokens import hash_secret, new_secret, token_store

playwright_sync = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
_SCRIPT = shutil.which("flagmw", path=str(Path(sys.executable).parent))
COMMAND = [_SCRIPT] if _SCRIPT else [sys.executable, "-m", "flagmw.cli"]
REFUND = "tools.refund_api.enabled"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="apt-get install chromium"),
]


@dataclass
class Served:
    url: str
    db: Path
    tokens: dict[str, str]
    shots: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    db = tmp_path / "flagmw.db"
    flags = tmp_path / "flags.yaml"
    flags.write_text(FLAGS_YAML, encoding="utf-8")
    registry = FlagRegistry.from_yaml(flags)
    store = SQLiteStore(db, create=True)
    FlagClient(registry, store).publish(snapshot_part(), author="alice", message="first rev")
    doc = snapshot_part()
    doc["tenants"]["acme"]["values"]["loop.max_iterations"] = 3
    doc["values"]["model.fallbacks"] = ["gpt-4o-mini", "gpt-4o"]
    FlagClient(registry, store).publish(doc, author="bob", message="acme loop cap 3")
    tokens = {}
    for name, role in (("oncall", "operator"), ("support", "viewer"), ("lead", "admin")):
        secret = new_secret()
        token_store(store).add_token(hash_secret(secret) or "", name, role, actor="setup", at=0)
        tokens[role] = secret
    store.close()
    port = _free_port()
    env = {**os.environ, "FLAGMW_ACTOR": "cli-oncall"}
    proc = subprocess.Popen(
        [*COMMAND, "--store", str(db), "--registry", str(flags), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise AssertionError("flagmw serve did not start")
        shots = Path(os.environ.get("FLAGMW_CONSOLE_SCREENSHOTS") or tmp_path)
        shots.mkdir(parents=True, exist_ok=True)
        yield Served(url, db, tokens, shots)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def browser() -> Iterator[Any]:
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def _sign_in(browser: Any, served: Served, role: str, **ctx: Any) -> Any:
    page = browser.new_context(viewport={"width": 1360, "height": 900}, **ctx).new_page()
    page.goto(served.url + "/ui/kills")
    assert "/login" in page.url
    page.get_by_label("API token").fill(served.tokens[role])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/ui/kills")
    return page


def _cli(served: Served, *args: str) -> str:
    out = subprocess.run(
        [*COMMAND, "--store", str(served.db), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "FLAGMW_ACTOR": "cli-oncall"},
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_on_call_kills_a_tool_sees_a_cli_kill_live_and_ends_it(
    served: Served, browser: Any
) -> None:
    expect = playwright_sync.expect
    page = _sign_in(browser, served, "operator")
    page.locator("#live-status.live-on").wait_for()
    # kill the refund tool with a reason code, text and TTL preset
    card = page.locator(f"section[id='k-{REFUND}']")
    card.get_by_text(f"Kill {REFUND}…").click()
    card.get_by_label("Reason code").select_option("incident")
    card.get_by_label("What happened").fill("double refunds, INC-4521")
    card.get_by_label("15m").check()
    page.screenshot(path=str(served.shots / "console-kill-dialog.png"))
    card.get_by_role("button", name=f"Kill {REFUND}").click()
    page.wait_for_url("**/ui/overrides?ok=*")
    row = page.locator("tr[data-id=ov-1]")
    expect(row).to_contain_text(REFUND)
    expect(row).to_contain_text("[incident] double refunds, INC-4521")
    expect(row).to_contain_text("oncall")
    left = row.locator(".left")
    first = left.inner_text()
    assert first.startswith(("14m", "15m"))
    page.wait_for_timeout(1500)
    assert left.inner_text() != first  # counting down
    # a kill made with the CLI appears without a reload
    page.evaluate("window.__noReload = 42")
    _cli(served, "kill", "agent.enabled", "--reason", "runaway loops", "--ttl", "1h")
    cli_row = page.locator("tr[data-id=ov-2]")
    expect(cli_row).to_contain_text("agent.enabled", timeout=10_000)
    expect(cli_row).to_contain_text("cli-oncall")
    expect(page.locator("#toast")).to_contain_text("KILL agent.enabled")
    assert page.evaluate("window.__noReload") == 42
    page.screenshot(path=str(served.shots / "console-overrides.png"))
    # end it from the panel
    cli_row.get_by_label("reason to end ov-2").fill("loops fixed")
    cli_row.get_by_role("button", name="End").click()
    page.wait_for_url("**/ui/overrides?ok=*")
    expect(page.locator("tr[data-id=ov-2]")).to_have_count(0)
    expect(page.locator("tr[data-id=ov-1]")).to_have_count(1)
    out = _cli(served, "--json", "overrides")
    assert '"agent.enabled"' not in out
    # the flags table shows the kill as the winning layer
    page.goto(served.url + "/ui/flags?tenant=acme")
    refund = page.locator(f"tr[data-key='{REFUND}']")
    expect(refund).to_contain_text("override")
    expect(refund).to_contain_text("false")
    page.screenshot(path=str(served.shots / "console-flags.png"), full_page=True)
    audit = page
    audit.goto(served.url + "/ui/audit?kind=kill")
    expect(audit.locator("table.audit")).to_contain_text("kill.end")
    expect(audit.locator("table.audit")).to_contain_text("loops fixed")


def test_support_views_a_tenant_and_a_diff_read_only(served: Served, browser: Any) -> None:
    expect = playwright_sync.expect
    page = _sign_in(browser, served, "viewer")
    expect(page.locator("form[action='/ui/kill']")).to_have_count(0)
    page.goto(served.url + "/ui/tenants")
    page.get_by_label("Tenant").fill("acme")
    page.get_by_label("Changes from rev").select_option("1")
    page.get_by_label("to rev").select_option("2")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**/ui/tenants?tenant=acme*")
    row = page.locator("tr[data-key='model.primary']")
    expect(row).to_contain_text("gpt-4o-mini")
    expect(row).to_contain_text("tenant")
    expect(page.locator("table.diff")).to_contain_text("tenants.acme")
    expect(page.locator("table.diff")).not_to_contain_text("model.fallbacks")  # not acme's
    page.screenshot(path=str(served.shots / "console-tenant.png"), full_page=True)
    page.goto(served.url + "/ui/history?a=1&b=2")
    diff = page.locator("table.diff")
    expect(diff).to_contain_text("model.fallbacks")
    expect(diff).to_contain_text("tenants.acme")
    expect(page.get_by_role("button", name="Roll back to 1")).to_have_count(0)  # viewer
    page.screenshot(path=str(served.shots / "console-history.png"), full_page=True)


def test_an_admin_rolls_back_and_the_page_is_readable_on_a_phone(
    served: Served, browser: Any
) -> None:
    expect = playwright_sync.expect
    page = _sign_in(browser, served, "admin")
    page.goto(served.url + "/ui/history")
    page.get_by_label("rollback message for rev 1").fill("undo acme cap")
    page.get_by_role("button", name="Roll back to 1").click()
    page.wait_for_url("**/ui/history?ok=*")
    expect(page.locator(".flash.ok")).to_contain_text("now rev 3")
    _cli(served, "kill", REFUND, "--reason", "vendor outage", "--ttl", "4h", "--tenant", "acme")
    phone = _sign_in(
        browser, served, "operator", is_mobile=True, has_touch=True, device_scale_factor=2
    )
    phone.set_viewport_size({"width": 390, "height": 844})
    phone.goto(served.url + "/ui/overrides")
    expect(phone.locator("tr[data-id=ov-1]")).to_contain_text("tenant:acme")
    end_button = phone.locator("tr[data-id=ov-1]").get_by_role("button", name="End")
    expect(end_button).to_be_in_viewport()  # on a phone, no sideways scrolling to end it
    phone.screenshot(path=str(served.shots / "console-phone.png"))
