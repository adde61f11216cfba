"""Notifications of the console: kills, overrides, ends and publishes — from the API and
straight on the store (as the CLI writes) — delivered to a Slack-compatible and a
PagerDuty Events v2 receiver the test starts on loopback; retries with backoff, failures
in /metrics and on the dashboard, and an operation never waiting for a webhook."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import snapshot_part
from console_fixtures import REFUND
from fastapi.testclient import TestClient

from flagmw import FlagClient, FlagRegistry, SQLiteStore
from flagmw.cli.app import main
from flagmw.console import create_app
from flagmw.console.webhooks import Webhook, parse_webhook
from flagmw.stores.tokens import hash_secret, new_secret, token_store


class Receiver:
    """An HTTP server on 127.0.0.1 recording JSON posts; ``statuses`` are answered in
    turn (then 200); ``gate``, when set, holds every request until it is set."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.posts: list[dict[str, Any]] = []
        self.statuses = list(statuses or [])
        self.attempts = 0
        self.gate: threading.Event | None = None
        self.holding = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.attempts += 1
                if outer.gate is not None:
                    outer.holding.set()
                    outer.gate.wait(10)
                status = outer.statuses.pop(0) if outer.statuses else 200
                if status == 200:
                    outer.posts.append(body)
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.posts) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.posts) >= n, self.posts
        return self.posts

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def setup(tmp_path: Path, registry: FlagRegistry) -> Iterator[tuple[SQLiteStore, str]]:
    store = SQLiteStore(tmp_path / "s.db", create=True)
    FlagClient(registry, store).publish(snapshot_part(), author="setup", message="first")
    secret = new_secret()
    token_store(store).add_token(hash_secret(secret) or "", "oncall", "admin", actor="t", at=0)
    yield store, secret
    store.close()


def _app(store: SQLiteStore, hooks: list[Webhook]) -> Any:
    return create_app(store, webhooks=hooks, webhook_backoff=0.01)


def test_kills_publishes_and_ends_reach_slack_and_pagerduty(
    setup: tuple[SQLiteStore, str], registry: FlagRegistry
) -> None:
    store, secret = setup
    slack, pd = Receiver(), Receiver()
    hooks = [Webhook("slack", slack.url), Webhook("pagerduty", pd.url, "rk-123")]
    with TestClient(_app(store, hooks)) as http:
        r = http.post(
            "/api/v1/overrides",
            json={"key": REFUND, "reason": "double refunds", "reason_code": "incident"},
            headers={"Authorization": f"Bearer {secret}"},
        )
        oid = r.json()["id"]
        (msg,) = slack.wait_for(1)
        assert msg["text"] == (
            f"flagmw: KILL {REFUND} = false (global) by oncall: [incident] double refunds"
        )
        assert msg["blocks"][0]["text"]["type"] == "mrkdwn"
        (event,) = pd.wait_for(1)
        assert event["routing_key"] == "rk-123"
        assert event["event_action"] == "trigger"
        assert event["dedup_key"] == f"flagmw:{store.name}:{oid}"
        assert event["payload"]["severity"] == "critical"
        assert event["payload"]["component"] == REFUND
        assert event["payload"]["custom_details"]["actor"] == "oncall"
        # changes made without the console (the CLI, Python) are delivered too
        cli = FlagClient(registry, SQLiteStore(store.path))
        cli.end_override(oid, actor="cli-user", reason="fixed")
        resolve = pd.wait_for(2)[1]
        assert (resolve["event_action"], resolve["dedup_key"]) == ("resolve", event["dedup_key"])
        doc = snapshot_part()
        doc["values"]["loop.max_iterations"] = 5
        cli.publish(doc, author="cli-user", message="cap 5")
        texts = [m["text"] for m in slack.wait_for(3)]
        assert texts[1] == f"flagmw: KILL {REFUND} (global) ended by cli-user: fixed"
        assert texts[2] == "flagmw: rev 2 published by cli-user: cap 5"
        metrics = http.get("/metrics").text
        assert "flagmw_webhook_deliveries_total 6\n" in metrics
        assert "flagmw_webhook_failures_total 0\n" in metrics
    slack.close()
    pd.close()


def test_a_failing_receiver_is_retried_with_backoff(setup: tuple[SQLiteStore, str]) -> None:
    store, secret = setup
    flaky = Receiver(statuses=[500, 503])
    with TestClient(_app(store, [Webhook("slack", flaky.url)])) as http:
        http.post(
            "/api/v1/overrides",
            json={"key": REFUND, "reason": "x"},
            headers={"Authorization": f"Bearer {secret}"},
        )
        flaky.wait_for(1)
        assert flaky.attempts == 3
        assert "flagmw_webhook_failures_total 0\n" in http.get("/metrics").text
    flaky.close()


def test_failures_show_in_metrics_and_on_the_dashboard(setup: tuple[SQLiteStore, str]) -> None:
    store, secret = setup
    down = Receiver(statuses=[503] * 100)
    bad = Receiver(statuses=[400] * 100)
    hooks = [Webhook("slack", down.url), Webhook("slack", bad.url)]
    with TestClient(_app(store, hooks)) as http:
        auth = {"Authorization": f"Bearer {secret}"}
        http.post("/api/v1/overrides", json={"key": REFUND, "reason": "x"}, headers=auth)
        deadline = time.monotonic() + 10
        while "flagmw_webhook_failures_total 2\n" not in http.get("/metrics").text:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert down.attempts == 5  # every attempt
        assert bad.attempts == 1  # a 400 is not retried
        page = http.get("/ui/overrides", headers=auth).text
        assert "Notifications are failing" in page
    down.close()
    bad.close()


def test_an_operation_never_waits_for_a_webhook(setup: tuple[SQLiteStore, str]) -> None:
    store, secret = setup
    slow = Receiver()
    slow.gate = threading.Event()
    with TestClient(_app(store, [Webhook("slack", slow.url)])) as http:
        auth = {"Authorization": f"Bearer {secret}"}
        first = http.post("/api/v1/overrides", json={"key": REFUND, "reason": "a"}, headers=auth)
        assert slow.holding.wait(10)  # the receiver now holds the first delivery
        second = http.post(
            "/api/v1/overrides", json={"key": "agent.enabled", "reason": "b"}, headers=auth
        )
        assert (first.status_code, second.status_code) == (201, 201)
        assert slow.posts == []  # both answered while the webhook was still waiting
        slow.gate.set()
        assert len(slow.wait_for(2)) == 2
    slow.close()


def test_webhook_specs() -> None:
    assert parse_webhook("slack=https://hooks.example/x") == Webhook(
        "slack", "https://hooks.example/x"
    )
    assert parse_webhook("pagerduty=https://pd.example/v2/enqueue", "k").routing_key == "k"
    for spec, words in (
        ("teams=https://x", "slack=URL or pagerduty=URL"),
        ("slack=file:///etc/passwd", "not an http\\(s\\) URL"),
        ("pagerduty=https://pd.example", "FLAGMW_PAGERDUTY_ROUTING_KEY"),
    ):
        with pytest.raises(ValueError, match=words):
            parse_webhook(spec)


def test_serve_refuses_a_bad_webhook(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLAGMW_PAGERDUTY_ROUTING_KEY", raising=False)
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--webhook", "pagerduty=https://pd.example/v2/enqueue"])
    assert exc.value.code == 2
    assert "FLAGMW_PAGERDUTY_ROUTING_KEY" in capsys.readouterr().err
