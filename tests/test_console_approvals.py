"""Two-admin approval: a publish that changes a ``billing`` or ``compliance`` flag waits
until a second admin approves it; the published rev and its audit entry name both; the
requester cannot approve their own change; other publishes go straight through. On real
SQLite and PostgreSQL stores."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import flags_data, snapshot_part
from console_fixtures import ConsoleEnv, make_env
from fastapi.testclient import TestClient
from store_kinds import STORE_KINDS

from flagmw import FlagRegistry
from flagmw.console.approvals import guarded_keys
from flagmw.stores.tokens import hash_secret, new_secret, token_store

PII = "compliance.pii_redaction"


def _registry() -> FlagRegistry:
    data = flags_data()
    data["flags"][PII]["tags"] = ["compliance"]
    data["flags"]["billing.refund_limit"] = {
        "type": "int",
        "default": 100,
        "min": 0,
        "max": 10_000,
        "tags": ["billing"],
        "owner": "finance",
        "description": "Largest automatic refund (USD)",
    }
    return FlagRegistry.from_dict(data)


@pytest.fixture(params=["sqlite", "postgres"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[ConsoleEnv, str]]:
    store, cleanup = STORE_KINDS[request.param](tmp_path)
    try:
        e = make_env(store, _registry())
        second = new_secret()
        token_store(store).add_token(hash_secret(second) or "", "admin2", "admin", actor="t", at=0)
        with e.http:
            yield e, second
    finally:
        cleanup()


def _publish(e: ConsoleEnv, doc: dict[str, Any], parent: int = 1) -> Any:
    return e.http.post(
        "/api/v1/snapshots",
        json={"document": doc, "message": "raise refund limit", "parent_rev": parent},
        headers=e.auth("admin"),
    )


def test_a_billing_change_waits_for_a_second_admin(env: tuple[ConsoleEnv, str]) -> None:
    e, second = env
    doc = snapshot_part()
    doc["tenants"]["acme"]["values"]["billing.refund_limit"] = 500
    before = e.state()
    r = _publish(e, doc)
    assert r.status_code == 202, r.text
    pending = r.json()["pending"]
    assert (pending["keys"], pending["requested_by"]) == (["billing.refund_limit"], "admin")
    assert e.state() == before  # nothing published
    listed = e.http.get("/api/v1/approvals", headers=e.auth("viewer")).json()["pending"]
    assert [p["id"] for p in listed] == [pending["id"]]
    own = e.http.post(f"/api/v1/approvals/{pending['id']}/approve", headers=e.auth("admin"))
    assert own.status_code == 403
    assert "a second admin" in own.json()["detail"]
    op = e.http.post(f"/api/v1/approvals/{pending['id']}/approve", headers=e.auth("operator"))
    assert op.status_code == 403
    assert e.state() == before
    ok = e.http.post(
        f"/api/v1/approvals/{pending['id']}/approve",
        headers={"Authorization": f"Bearer {second}"},
    )
    assert ok.status_code == 201, ok.text
    assert (ok.json()["rev"], ok.json()["decided_by"]) == (2, "admin2")
    head = e.store.head()
    assert head is not None
    assert (head.rev, head.author) == (2, "admin")
    assert head.message == "raise refund limit (approved by admin2)"
    entry = e.store.audit(1, action="publish")[0]
    assert (entry.actor, entry.reason) == ("admin", "raise refund limit (approved by admin2)")
    again = e.http.post(
        f"/api/v1/approvals/{pending['id']}/approve",
        headers={"Authorization": f"Bearer {second}"},
    )
    assert again.status_code == 409
    flags = e.http.get(
        "/api/v1/admin/feature-flags", params={"tenant": "acme"}, headers=e.auth("viewer")
    ).json()["flags"]
    assert next(f for f in flags if f["name"] == "billing.refund_limit")["value"] == 500


def test_other_changes_publish_at_once_and_rejection(env: tuple[ConsoleEnv, str]) -> None:
    e, second = env
    doc = snapshot_part()
    doc["values"]["loop.max_iterations"] = 6
    assert _publish(e, doc).status_code == 201
    doc["tenants"]["acme"]["requires"] = []  # drops a compliance requirement
    r = _publish(e, doc, parent=2)
    assert r.status_code == 202
    pid = r.json()["pending"]["id"]
    assert r.json()["pending"]["keys"] == [PII]
    rej = e.http.post(
        f"/api/v1/approvals/{pid}/reject",
        json={"reason": "not without legal"},
        headers={"Authorization": f"Bearer {second}"},
    )
    assert (rej.status_code, rej.json()["status"]) == (200, "rejected")
    assert e.store.head().rev == 2  # type: ignore[union-attr]
    assert e.http.get("/api/v1/approvals", headers=e.auth("viewer")).json()["pending"] == []


def test_a_stale_approval_is_a_conflict(env: tuple[ConsoleEnv, str]) -> None:
    e, second = env
    doc = snapshot_part()
    doc["values"]["billing.refund_limit"] = 50
    pid = _publish(e, doc).json()["pending"]["id"]
    other = snapshot_part()
    other["values"]["loop.max_iterations"] = 7
    assert _publish(e, other).status_code == 201  # rev 2 meanwhile
    r = e.http.post(
        f"/api/v1/approvals/{pid}/approve", headers={"Authorization": f"Bearer {second}"}
    )
    assert r.status_code == 409
    assert e.store.head().rev == 2  # type: ignore[union-attr]


def test_the_dashboard_approves_with_a_second_admin(env: tuple[ConsoleEnv, str]) -> None:
    e, second = env
    doc = snapshot_part()
    doc["values"]["billing.refund_limit"] = 70
    pid = _publish(e, doc).json()["pending"]["id"]
    other = TestClient(e.app)
    r = other.post("/login", data={"token": second}, follow_redirects=False)
    assert r.status_code == 303
    page = other.get("/ui/history").text
    assert "Approve and publish" in page
    csrf = re.search(r'data-csrf="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    r = other.post(f"/ui/approvals/{pid}/approve", data={"csrf": csrf}, follow_redirects=False)
    assert "published+rev+2" in r.headers["location"]
    assert e.store.head().message.endswith("(approved by admin2)")  # type: ignore[union-attr]


def test_guarded_keys_sees_every_kind_of_mention() -> None:
    reg = _registry()
    base = {"values": {}, "tenants": {}, "rules": [], "experiments": {}}
    cases = [
        {"values": {"billing.refund_limit": 5}},
        {"tenants": {"acme": {"values": {"billing.refund_limit": 5}}}},
        {"rules": [{"name": "r", "when": {"plan": "x"}, "set": {"billing.refund_limit": 5}}]},
        {"tenants": {"acme": {"requires": [PII]}}},
        {"experiments": {"e": {"flag": "billing.refund_limit"}}},
    ]
    for change in cases:
        assert guarded_keys(reg, base, {**base, **change}), change
    assert guarded_keys(reg, base, {**base, "values": {"loop.max_iterations": 3}}) == []
    assert guarded_keys(reg, None, base) == []
