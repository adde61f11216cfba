"""The console's event stream on every store kind: a kill, a publish and an end made
straight on the store (as the CLI or another process writes) arrive as server-sent
events — driven by the store's change token (SQLite's counter, PostgreSQL's
LISTEN/NOTIFY, Redis pub/sub)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import snapshot_part
from console_fixtures import REFUND, make_env
from store_kinds import STORE_KINDS

from flagmw import FlagClient, FlagRegistry


def _read_events(http: Any, headers: dict[str, str], n: int, out: list[Any]) -> None:
    with http.stream("GET", f"/api/v1/events?limit={n}", headers=headers) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                out.append((name, json.loads(line[6:])))


@pytest.mark.parametrize("kind", ["sqlite", "postgres", "redis"])
def test_changes_made_elsewhere_arrive_as_events(
    kind: str, tmp_path: Path, registry: FlagRegistry
) -> None:
    store, cleanup = STORE_KINDS[kind](tmp_path)
    try:
        e = make_env(store, registry)
        got: list[Any] = []
        with e.http:
            reader = threading.Thread(
                target=_read_events, args=(e.http, e.auth("viewer"), 3, got), daemon=True
            )
            reader.start()
            for _ in range(100):  # the hello event: the stream has its first state
                if got:
                    break
                threading.Event().wait(0.05)
            other = FlagClient(registry, store)
            ov = other.kill(REFUND, reason="from elsewhere", actor="cli-user", ttl="1h")
            doc = snapshot_part()
            doc["values"]["loop.max_iterations"] = 9
            other.publish(doc, author="cli-user", message="nine")
            other.end_override(ov.id, actor="cli-user", reason="done")
            reader.join(20)
        names = [n for n, _ in got]
        assert names[0] == "hello"
        assert got[0][1] == {"rev": 1, "overrides": []}
        # in the order they happened, even a kill set and ended between two looks
        assert names[1:] == ["override.created", "rev", "override.ended"]
        data = {n: d for n, d in got}
        assert data["override.created"]["actor"] == "cli-user"
        assert data["override.created"]["key"] == REFUND
        assert (data["rev"]["rev"], data["rev"]["author"]) == (2, "cli-user")
        assert data["override.ended"]["ended_by"] == "cli-user"
    finally:
        cleanup()


def test_the_feed_reports_expiry_and_renewal_and_skips_tokens(registry: FlagRegistry) -> None:
    from conftest import T0, FixedClock

    from flagmw import MemoryStore
    from flagmw.console.feed import ChangeFeed
    from flagmw.stores.tokens import hash_secret, new_secret, token_store

    clock = FixedClock()
    store = MemoryStore(clock=clock)
    client = FlagClient(registry, store, clock=clock)
    client.publish(snapshot_part(), author="a", message="m")
    feed = ChangeFeed(store, clock())
    assert feed.look(clock()) == []
    short = client.kill(REFUND, reason="r", actor="a", ttl="1m")
    other = client.kill("agent.enabled", reason="r", actor="a", ttl="1h")
    client.renew(other.id, actor="b", reason="longer", ttl="2h")
    token_store(store).add_token(hash_secret(new_secret()) or "", "x", "viewer", actor="a", at=T0)
    names = [(n, d["id"]) for n, d in feed.look(clock())]
    assert names == [
        ("override.created", short.id),
        ("override.created", other.id),
        ("override.renewed", other.id),
    ]
    clock.advance(120)
    assert [(n, d["id"]) for n, d in feed.look(clock())] == [("override.expired", short.id)]
    assert feed.look(clock()) == []
