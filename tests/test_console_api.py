"""The console's admin API with the real ASGI app on real stores (SQLite and PostgreSQL;
memory and Redis in the every-store test): values and sources, explain, snapshots,
overrides, audit, health, and bad input answered with problem+json and nothing changed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import snapshot_part
from console_fixtures import PII, REFUND, ConsoleEnv, env, make_env
from store_kinds import STORE_KINDS

from flagmw import FlagClient, FlagRegistry
from flagmw.core.context import EvaluationContext

__all__ = ["env"]  # the fixture, re-exported for pytest

PROBLEM = "application/problem+json"


def _problem(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = resp.json()
    assert body["status"] == status
    assert body["detail"]
    return body


def test_feature_flags_have_the_shape_services_poll(env: ConsoleEnv) -> None:
    r = env.http.get(
        "/api/v1/admin/feature-flags",
        params={"tenant": "acme", "route": "refund-assistant"},
        headers=env.auth("viewer"),
    )
    assert r.status_code == 200
    flags = {f["name"]: f for f in r.json()["flags"]}
    assert set(flags) == set(env.registry.keys())
    assert flags[REFUND] == {"name": REFUND, "enabled": True, "source": "default", "value": True}
    assert flags["model.primary"]["source"] == "tenant"
    assert flags["model.primary"]["value"] == "gpt-4o-mini"
    assert flags["model.primary"]["enabled"] is None
    assert flags["loop.max_iterations"] == {
        "name": "loop.max_iterations",
        "enabled": None,
        "source": "route",
        "value": 4,
    }
    assert flags["model.fallbacks"]["source"] == "snapshot"


def test_flags_list_has_definitions_and_agrees_with_the_client(env: ConsoleEnv) -> None:
    params = {"tenant": "acme", "plan": "enterprise", "user": "u-1"}
    r = env.http.get("/api/v1/flags", params=params, headers=env.auth("viewer"))
    assert r.status_code == 200
    body = r.json()
    assert body["snapshot_rev"] == 1
    rows = {f["key"]: f for f in body["flags"]}
    pii = rows[PII]
    assert (pii["protected"], pii["type"], pii["owner"], pii["binding"]) == (
        True,
        "bool",
        "security",
        "pinned",
    )
    assert rows["prompt.style"]["expires"] == "2099-03-01"
    assert rows[REFUND]["binding"] == "hot"
    # the same resolution as a worker's client, layer by layer
    rc = FlagClient(env.registry, env.store).resolve(
        EvaluationContext(tenant_id="acme", plan="enterprise", user_id="u-1")
    )
    for key, row in rows.items():
        assert row["value"] == rc[key]
        assert row["provenance"] == rc.provenance[key].to_dict()
    assert rows["prompt.style"]["value"] == "v3"  # the enterprise rule


def test_explain_and_an_unknown_key(env: ConsoleEnv) -> None:
    r = env.http.get(
        "/api/v1/flags/model.primary/explain",
        params={"tenant": "acme"},
        headers=env.auth("viewer"),
    )
    assert r.status_code == 200
    doc = r.json()
    assert doc["provenance"] == {"layer": "tenant", "rev": 1, "scope": "acme"}
    statuses = {c["provenance"]["layer"]: c["status"] for c in doc["candidates"]}
    assert statuses["tenant"] == "won"
    assert statuses["default"] == "shadowed"
    bad = env.http.get("/api/v1/flags/model.primry/explain", headers=env.auth("viewer"))
    assert "model.primary" in _problem(bad, 404)["detail"]  # the CLI's suggestion


def test_bad_context_is_a_located_problem(env: ConsoleEnv) -> None:
    r = env.http.get("/api/v1/flags", params={"attributes": "[1, 2]"}, headers=env.auth("viewer"))
    body = _problem(r, 422)
    assert body["problems"][0]["path"] == "attributes"


def test_kill_renew_end_through_the_api(env: ConsoleEnv) -> None:
    worker = FlagClient(env.registry, env.store)
    assert worker.is_enabled(REFUND) is True
    r = env.http.post(
        "/api/v1/overrides",
        json={"key": REFUND, "reason": "double refunds", "reason_code": "incident", "ttl": "15m"},
        headers=env.auth("operator"),
    )
    assert r.status_code == 201, r.text
    ov = r.json()
    assert ov["actor"] == "operator"
    assert ov["reason"] == "[incident] double refunds"
    assert 890 < ov["seconds_left"] <= 900
    worker.poll()
    assert worker.is_enabled(REFUND) is False  # a worker's poll sees it at once
    listed = env.http.get("/api/v1/overrides", headers=env.auth("viewer")).json()["overrides"]
    assert [o["id"] for o in listed] == [ov["id"]]
    renewed = env.http.post(
        f"/api/v1/overrides/{ov['id']}/renew",
        json={"reason": "still broken", "ttl": "4h"},
        headers=env.auth("operator"),
    )
    assert renewed.status_code == 200
    assert renewed.json()["seconds_left"] > 4 * 3600 - 10
    ended = env.http.post(
        f"/api/v1/overrides/{ov['id']}/end", json={"reason": "fixed"}, headers=env.auth("admin")
    )
    assert ended.status_code == 200
    assert (ended.json()["status"], ended.json()["ended_by"]) == ("ended", "admin")
    again = env.http.post(
        f"/api/v1/overrides/{ov['id']}/end", json={"reason": "x"}, headers=env.auth("admin")
    )
    assert "already ended" in _problem(again, 422)["detail"]
    worker.poll()
    assert worker.is_enabled(REFUND) is True
    audit = [e.action for e in env.store.audit(3)]
    assert audit == ["kill.end", "kill.renew", "kill.set"]


def test_protected_flag_rule_and_force_as_in_the_cli(env: ConsoleEnv) -> None:
    before = env.state()
    r = env.http.post(
        "/api/v1/overrides",
        json={"key": PII, "reason": "test", "tenant": "acme"},
        headers=env.auth("operator"),
    )
    assert "requires compliance.pii_redaction" in _problem(r, 422)["detail"]
    assert env.state() == before
    glob = env.http.post(
        "/api/v1/overrides", json={"key": PII, "reason": "test"}, headers=env.auth("operator")
    )
    assert glob.status_code == 201
    assert glob.json()["exempt_tenants"] == ["acme"]
    forced = env.http.post(
        "/api/v1/overrides",
        json={"key": PII, "reason": "legal hold", "tenant": "acme", "force": True},
        headers=env.auth("operator"),
    )
    assert forced.status_code == 201
    assert env.store.audit(1)[0].action == "kill.forced"
    unknown = env.http.post(
        "/api/v1/overrides",
        json={"key": REFUND, "reason": "x", "tenant": "no-such-tenant"},
        headers=env.auth("operator"),
    )
    assert "--force" in _problem(unknown, 422)["detail"]


BAD_BODIES = [
    ({"key": "nope.flag", "reason": "x"}, 404, "unknown flag"),
    ({"key": REFUND, "reason": "x", "ttl": "forever"}, 422, "duration"),
    ({"key": REFUND, "reason": "x", "ttl": "3d"}, 422, "above the maximum"),
    ({"key": REFUND, "reason": "   "}, 422, "reason"),
    ({"key": REFUND, "reason": ""}, 422, "reason"),
    ({"key": REFUND}, 422, "reason"),
    ({"key": REFUND, "reason": "x", "ttl": 5}, 422, "ttl"),
    ({"key": REFUND, "reason": "x", "force": "yes"}, 422, "force"),
    ({"key": "model.primary", "reason": "x"}, 422, "a kill turns a bool flag off"),
    ({"key": "model.primary", "kind": "override", "value": "gpt-5", "reason": "x"}, 422, ""),
    ({"key": REFUND, "reason": "x", "tenant": "acme", "route": "r"}, 422, "not both"),
    ({"key": REFUND, "reason": "x", "reason_code": "because"}, 422, "reason code"),
    ({"key": REFUND, "reason": "x", "actor": "mallory"}, 422, "actor"),
    ([1, 2], 422, ""),
]


@pytest.mark.parametrize(("body", "status", "words"), BAD_BODIES)
def test_bad_input_is_a_problem_and_changes_nothing(
    env: ConsoleEnv, body: Any, status: int, words: str
) -> None:
    before = env.state()
    r = env.http.post("/api/v1/overrides", json=body, headers=env.auth("admin"))
    problem = _problem(r, status)
    assert words.lower() in json.dumps(problem).lower()
    assert env.state() == before


def test_not_json_and_huge_bodies(env: ConsoleEnv) -> None:
    before = env.state()
    h = {**env.auth("admin"), "content-type": "application/json"}
    _problem(env.http.post("/api/v1/overrides", content=b"{not json", headers=h), 422)
    huge = json.dumps({"key": REFUND, "reason": "x" * 2_000_000}).encode()
    _problem(env.http.post("/api/v1/overrides", content=huge, headers=h), 413)
    assert env.state() == before


def test_the_actor_is_the_token_never_the_request(env: ConsoleEnv) -> None:
    r = env.http.post(
        "/api/v1/overrides",
        json={"key": REFUND, "reason": "x"},
        headers={**env.auth("operator"), "X-Actor": "mallory", "X-Forwarded-User": "mallory"},
    )
    assert r.status_code == 201
    assert r.json()["actor"] == "operator"
    entry = env.store.audit(1)[0]
    assert entry.actor == "operator"
    pub = env.http.post(
        "/api/v1/snapshots",
        json={"document": snapshot_part(), "message": "m", "parent_rev": 1, "author": "mallory"},
        headers=env.auth("admin"),
    )
    _problem(pub, 422)


def test_publish_diff_rollback(env: ConsoleEnv) -> None:
    doc = snapshot_part()
    doc["tenants"]["acme"]["values"]["loop.max_iterations"] = 3
    r = env.http.post(
        "/api/v1/snapshots",
        json={"document": doc, "message": "acme loop cap", "parent_rev": 1},
        headers=env.auth("admin"),
    )
    assert r.status_code == 201, r.text
    assert (r.json()["rev"], r.json()["parent_rev"]) == (2, 1)
    assert env.store.head().author == "admin"  # type: ignore[union-attr]
    stale = env.http.post(
        "/api/v1/snapshots",
        json={"document": snapshot_part(), "message": "late", "parent_rev": 1},
        headers=env.auth("admin"),
    )
    body = _problem(stale, 409)
    assert (body["expected_parent"], body["head_rev"]) == (1, 2)
    hist = env.http.get("/api/v1/snapshots", headers=env.auth("viewer")).json()["snapshots"]
    assert [h["rev"] for h in hist] == [2, 1]
    one = env.http.get("/api/v1/snapshots/2", headers=env.auth("viewer")).json()
    assert one["document"]["tenants"]["acme"]["values"]["loop.max_iterations"] == 3
    diff = env.http.get("/api/v1/snapshots/1/diff/2", headers=env.auth("viewer")).json()
    paths = [c["path"] for c in diff["changes"]]
    assert any(p.startswith("tenants.acme") for p in paths)
    only = env.http.get(
        "/api/v1/snapshots/1/diff/2", params={"tenant": "globex"}, headers=env.auth("viewer")
    ).json()
    assert only["changes"] == []
    rb = env.http.post(
        "/api/v1/snapshots/1/rollback", json={"message": "undo"}, headers=env.auth("admin")
    )
    assert rb.status_code == 201
    assert env.store.head().rollback_of == 1  # type: ignore[union-attr]
    _problem(env.http.get("/api/v1/snapshots/99", headers=env.auth("viewer")), 404)


def test_an_invalid_publish_lists_located_problems_and_publishes_nothing(
    env: ConsoleEnv,
) -> None:
    before = env.state()
    text = "values:\n  loop.max_iterations: 500\n  model.primary: gpt-5\n"
    r = env.http.post(
        "/api/v1/snapshots",
        json={"yaml": text, "message": "bad", "parent_rev": 1},
        headers=env.auth("admin"),
    )
    body = _problem(r, 422)
    problems = body["problems"]
    assert len(problems) == 2
    assert {p["location"] for p in problems} == {"<request>.yaml:2", "<request>.yaml:3"}
    assert all(p["path"].startswith("values") for p in problems)
    doc = snapshot_part()
    doc["values"]["nope.flag"] = 1
    r = env.http.post(
        "/api/v1/snapshots",
        json={"document": doc, "message": "bad", "parent_rev": 1},
        headers=env.auth("admin"),
    )
    assert _problem(r, 422)["problems"][0]["code"] == "unknown_key"
    neither = env.http.post(
        "/api/v1/snapshots", json={"message": "x", "parent_rev": 1}, headers=env.auth("admin")
    )
    _problem(neither, 422)
    assert env.state() == before


def test_audit_filters_and_paging(env: ConsoleEnv) -> None:
    for i in range(5):
        r = env.http.post(
            "/api/v1/overrides",
            json={"key": REFUND if i % 2 else "agent.enabled", "reason": f"r{i}"},
            headers=env.auth("operator" if i < 3 else "admin"),
        )
        assert r.status_code == 201

    def get(**p: Any) -> Any:
        return env.http.get("/api/v1/audit", params=p, headers=env.auth("viewer")).json()

    kills = get(kind="kill", limit=2)
    assert len(kills["entries"]) == 2
    nxt = get(kind="kill", limit=2, before=kills["next_before"])
    last = get(kind="kill", limit=2, before=nxt["next_before"])
    seqs = [e["seq"] for page in (kills, nxt, last) for e in page["entries"]]
    assert len(seqs) == 5
    assert seqs == sorted(seqs, reverse=True)
    assert last["next_before"] is None
    assert {e["actor"] for e in get(actor="admin")["entries"]} == {"admin"}
    assert len(get(actor="admin", kind="kill")["entries"]) == 2
    refund = get(key=REFUND)["entries"]
    assert len(refund) == 2
    assert all(REFUND in e["target"] for e in refund)
    assert get(since=4_000_000_000)["entries"] == []
    _problem(env.http.get("/api/v1/audit", params={"limit": 0}, headers=env.auth("viewer")), 422)


def test_health_ready_metrics(env: ConsoleEnv) -> None:
    assert env.http.get("/healthz").json() == {"status": "ok"}
    ready = env.http.get("/readyz")
    assert (ready.status_code, ready.json()["head_rev"]) == (200, 1)
    env.http.post(
        "/api/v1/overrides", json={"key": REFUND, "reason": "x"}, headers=env.auth("admin")
    )
    text = env.http.get("/metrics").text
    assert "flagmw_head_rev 1\n" in text
    assert 'flagmw_active_overrides{kind="kill"} 1\n' in text
    assert "flagmw_store_read_seconds " in text


def test_readyz_is_not_ready_when_the_store_is_gone(tmp_path: Path, registry: FlagRegistry) -> None:
    store, cleanup = STORE_KINDS["sqlite"](tmp_path)
    e = make_env(store, registry)
    (tmp_path / "s.db").rename(tmp_path / "moved.db")
    r = e.http.get("/readyz")
    assert r.status_code == 503
    assert "gone" in r.json()["detail"]
    cleanup()


@pytest.mark.parametrize("kind", sorted(STORE_KINDS))
def test_the_console_works_on_every_store(
    kind: str, tmp_path: Path, registry: FlagRegistry
) -> None:
    store, cleanup = STORE_KINDS[kind](tmp_path)
    try:
        e = make_env(store, registry)
        r = e.http.post(
            "/api/v1/overrides", json={"key": REFUND, "reason": "x"}, headers=e.auth("operator")
        )
        assert r.status_code == 201
        flags = e.http.get("/api/v1/admin/feature-flags", headers=e.auth("viewer")).json()
        refund = next(f for f in flags["flags"] if f["name"] == REFUND)
        assert (refund["enabled"], refund["source"]) == (False, "override")
        revoked = e.http.post(
            "/api/v1/tokens/tok-1/revoke", json={"reason": "x"}, headers=e.auth("admin")
        )
        assert revoked.status_code == 200
        assert e.http.get("/api/v1/flags", headers=e.auth("viewer")).status_code == 401
    finally:
        cleanup()


def test_a_publish_during_a_config_canary_is_a_409_naming_it(env: ConsoleEnv) -> None:
    """Issue 12 §3: the console's publishes are refused while the head is a canary."""
    from flagmw.rollout.canary import start_canary

    client = FlagClient(env.registry, env.store)
    doc = snapshot_part()
    doc["values"]["loop.max_iterations"] = 3
    start_canary(client, doc, author="ana", message="canary")
    before = env.state()
    r = env.http.post(
        "/api/v1/snapshots",
        json={"document": snapshot_part(), "message": "plain", "parent_rev": 2},
        headers=env.auth("admin"),
    )
    body = _problem(r, 409)
    assert "head rev 2 is a config canary over rev 1 (rollout config-rev-2)" in body["detail"]
    assert body["head_rev"] == 2
    assert env.state() == before
