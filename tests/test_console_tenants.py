"""The ``tenant-editor`` role: customer success sets one tenant's value of a flag the
registry marks ``tenant_editable`` — validated, published as a rev touching only that
tenant, authored by them — and nothing else (no kills, no publishes, no other flags)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import flags_data, snapshot_part
from console_fixtures import REFUND, ConsoleEnv, make_env
from store_kinds import STORE_KINDS

from flagmw import FlagRegistry


def _registry() -> FlagRegistry:
    data = flags_data()
    data["flags"]["model.primary"]["tenant_editable"] = True
    data["flags"]["loop.max_iterations"]["tenant_editable"] = True
    data["flags"]["billing.refund_limit"] = {
        "type": "int",
        "default": 100,
        "min": 0,
        "max": 10_000,
        "tags": ["billing"],
        "tenant_editable": True,
        "description": "Largest automatic refund",
    }
    return FlagRegistry.from_dict(data)


@pytest.fixture(params=["sqlite", "postgres"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ConsoleEnv]:
    store, cleanup = STORE_KINDS[request.param](tmp_path)
    try:
        e = make_env(store, _registry())
        with e.http:
            yield e
    finally:
        cleanup()


def _set(e: ConsoleEnv, tenant: str, key: str, value: Any, role: str = "tenant-editor") -> Any:
    return e.http.put(
        f"/api/v1/tenants/{tenant}/values/{key}",
        json={"value": value, "message": "contract upgrade"},
        headers=e.auth(role),
    )


def test_a_tenant_editor_sets_one_tenants_value(env: ConsoleEnv) -> None:
    r = _set(env, "acme", "loop.max_iterations", 12)
    assert r.status_code == 201, r.text
    assert r.json()["rev"] == 2
    head = env.store.head()
    assert head is not None
    assert (head.author, head.message) == (
        "tenant-editor",
        "contract upgrade (tenant acme: loop.max_iterations)",
    )
    assert env.store.audit(1, action="publish")[0].actor == "tenant-editor"
    diff = env.http.get("/api/v1/snapshots/1/diff/2", headers=env.auth("viewer")).json()
    assert [c["path"] for c in diff["changes"]] == ["tenants.acme.values[loop.max_iterations]"]
    flags = env.http.get(
        "/api/v1/admin/feature-flags", params={"tenant": "acme"}, headers=env.auth("viewer")
    ).json()["flags"]
    loop = next(f for f in flags if f["name"] == "loop.max_iterations")
    assert (loop["value"], loop["source"]) == (12, "tenant")
    clear = env.http.post(
        "/api/v1/tenants/acme/values/loop.max_iterations/clear",
        json={"message": "back to global"},
        headers=env.auth("tenant-editor"),
    )
    assert clear.status_code == 201
    assert (
        "loop.max_iterations" not in env.store.get_snapshot(3).document["tenants"]["acme"]["values"]
    )


@pytest.mark.parametrize(
    ("tenant", "key", "value", "status", "words"),
    [
        ("acme", "loop.max_iterations", 500, 422, "maximum"),
        ("acme", "loop.max_iterations", "many", 422, ""),
        ("acme", "model.primary", "gpt-5", 422, ""),
        ("acme", REFUND, False, 403, "not tenant_editable"),
        ("acme", "nope.flag", 1, 404, "unknown flag"),
        ("globex", "loop.max_iterations", 3, 404, "no tenant 'globex'"),
    ],
)
def test_bad_edits_change_nothing(
    env: ConsoleEnv, tenant: str, key: str, value: Any, status: int, words: str
) -> None:
    before = env.state()
    r = _set(env, tenant, key, value)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert words in r.json()["detail"]
    assert env.state() == before


def test_a_tenant_editor_may_do_nothing_else(env: ConsoleEnv) -> None:
    before = env.state()
    h = env.auth("tenant-editor")
    kill = env.http.post("/api/v1/overrides", json={"key": REFUND, "reason": "x"}, headers=h)
    pub = env.http.post(
        "/api/v1/snapshots",
        json={"document": snapshot_part(), "message": "m", "parent_rev": 1},
        headers=h,
    )
    assert (kill.status_code, pub.status_code) == (403, 403)
    for role in ("viewer", "operator"):
        assert _set(env, "acme", "loop.max_iterations", 3, role).status_code == 403
    assert env.state() == before
    assert _set(env, "acme", "loop.max_iterations", 3, "admin").status_code == 201


def test_a_billing_flag_still_needs_a_second_admin(env: ConsoleEnv) -> None:
    r = _set(env, "acme", "billing.refund_limit", 900)
    assert r.status_code == 202
    assert r.json()["pending"]["keys"] == ["billing.refund_limit"]
    assert env.store.head().rev == 1  # type: ignore[union-attr]
    ok = env.http.post(
        f"/api/v1/approvals/{r.json()['pending']['id']}/approve", headers=env.auth("admin")
    )
    assert ok.status_code == 201
    assert env.store.head().author == "tenant-editor"  # type: ignore[union-attr]


def test_the_tenant_page_edits_through_a_form(env: ConsoleEnv) -> None:
    r = env.http.post(
        "/login", data={"token": env.secrets["tenant-editor"]}, follow_redirects=False
    )
    assert r.status_code == 303
    page = env.http.get("/ui/tenants?tenant=acme").text
    assert 'action="/ui/tenants/acme/values/loop.max_iterations"' in page
    assert f'action="/ui/tenants/acme/values/{REFUND}"' not in page
    csrf = re.search(r'data-csrf="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    r = env.http.post(
        "/ui/tenants/acme/values/model.primary",
        data={"value": "gpt-4o", "message": "upgrade", "csrf": csrf},
        follow_redirects=False,
    )
    assert "published+rev+2" in r.headers["location"], r.headers["location"]
    doc = env.store.get_snapshot(2).document
    assert doc["tenants"]["acme"]["values"]["model.primary"] == "gpt-4o"


def test_an_edit_in_a_large_fleet_reads_and_writes_one_overlay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """3,000 tenants: the edit reads only the tenant's overlay (never the whole document)
    and the new rev writes only that overlay row."""
    from fastapi.testclient import TestClient

    from flagmw import FlagClient, SQLiteStore
    from flagmw.console import create_app
    from flagmw.stores.tokens import hash_secret, new_secret, token_store

    store = SQLiteStore(tmp_path / "fleet.db", create=True)
    registry = _registry()
    doc = snapshot_part()
    doc["tenants"] = {f"t-{i:04d}": {"values": {"loop.max_iterations": 5}} for i in range(3000)}
    FlagClient(registry, store).publish(doc, author="setup", message="fleet")
    secret = new_secret()
    token_store(store).add_token(hash_secret(secret) or "", "ed", "tenant-editor", actor="s", at=0)
    whole_reads: list[int] = []
    real = store.get_snapshot

    def spy(rev: int, *, overlays: bool = True) -> Any:
        if overlays:
            whole_reads.append(rev)
        return real(rev, overlays=overlays)

    with TestClient(create_app(store)) as http:
        monkeypatch.setattr(store, "get_snapshot", spy)
        r = http.put(
            "/api/v1/tenants/t-0042/values/loop.max_iterations",
            json={"value": 9, "message": "contract"},
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert r.status_code == 201, r.text
        assert whole_reads == []
    monkeypatch.undo()
    assert store.changed_overlays(1, 2) == {("tenants", "t-0042")}
    after = store.get_snapshot(2).document["tenants"]
    assert after["t-0042"]["values"]["loop.max_iterations"] == 9
    assert after["t-0043"]["values"]["loop.max_iterations"] == 5
    assert len(after) == 3000
    store.close()


def test_a_pending_tenant_edit_holds_only_that_overlay(env: ConsoleEnv) -> None:
    r = _set(env, "acme", "billing.refund_limit", 700)
    assert r.status_code == 202, r.text
    pid = r.json()["pending"]["id"]
    pending = env.http.get(f"/api/v1/approvals/{pid}", headers=env.auth("viewer")).json()
    assert pending["overlays"] is True
    assert list(pending["document"]) == ["tenants"]
    assert list(pending["document"]["tenants"]) == ["acme"]
    ok = env.http.post(f"/api/v1/approvals/{pid}/approve", headers=env.auth("admin"))
    assert ok.status_code == 201, ok.text
    assert env.store.changed_overlays(1, 2) == {("tenants", "acme")}
    acme = env.store.get_snapshot(2).document["tenants"]["acme"]
    assert acme["values"]["billing.refund_limit"] == 700


def test_a_bad_value_is_refused_before_it_waits_for_approval(env: ConsoleEnv) -> None:
    before = env.state()
    r = _set(env, "acme", "billing.refund_limit", 99_999)
    assert r.status_code == 422, r.text
    assert "billing.refund_limit" in r.json()["detail"]
    assert env.http.get("/api/v1/approvals", headers=env.auth("viewer")).json()["pending"] == []
    assert env.state() == before


def test_a_head_of_another_registry_is_edited_as_a_whole_document(tmp_path: Path) -> None:
    """The console's registry differs from the head's: the edit publishes the whole
    document, so every overlay is checked against the console's registry."""
    from fastapi.testclient import TestClient

    from flagmw import FlagClient, SQLiteStore
    from flagmw.console import create_app
    from flagmw.stores.tokens import hash_secret, new_secret, token_store

    store = SQLiteStore(tmp_path / "r.db", create=True)
    FlagClient(FlagRegistry.from_dict(flags_data()), store).publish(
        snapshot_part(), author="setup", message="old registry"
    )
    secret = new_secret()
    token_store(store).add_token(hash_secret(secret) or "", "ed", "tenant-editor", actor="s", at=0)
    with TestClient(create_app(store, registry=_registry())) as http:
        r = http.put(
            "/api/v1/tenants/acme/values/loop.max_iterations",
            json={"value": 11, "message": "contract"},
            headers={"Authorization": f"Bearer {secret}"},
        )
    assert r.status_code == 201, r.text
    head = store.head()
    assert head is not None
    assert head.registry_fingerprint == _registry().fingerprint
    assert store.get_snapshot(2).document["tenants"]["acme"]["values"]["loop.max_iterations"] == 11
    store.close()
