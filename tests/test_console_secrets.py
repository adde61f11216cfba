"""Viewers read everything but secrets: the values of ``sensitive`` flags are masked for
every role but admin — in flag lists, explain, snapshot documents, diffs, overrides, the
audit log and the dashboard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import flags_data, snapshot_part
from console_fixtures import ConsoleEnv, make_env

from flagmw import FlagClient, FlagRegistry, SQLiteStore

SECRET_KEY = "crm.api_token"
SECRET = "s3cr3t-value-9f2"


@pytest.fixture
def env(tmp_path: Path) -> ConsoleEnv:
    data = flags_data()
    data["flags"][SECRET_KEY] = {
        "type": "string",
        "default": "none",
        "sensitive": True,
        "description": "CRM token",
    }
    registry = FlagRegistry.from_dict(data)
    store = SQLiteStore(tmp_path / "s.db", create=True)
    e = make_env(store, registry)
    doc = snapshot_part()
    doc["tenants"]["acme"]["values"][SECRET_KEY] = SECRET
    FlagClient(registry, store).publish(doc, author="a", message="token for acme")
    FlagClient(registry, store).override(
        SECRET_KEY, SECRET + "-ov", reason="rotate", actor="a", tenant="acme"
    )
    return e


@pytest.mark.parametrize("role", ["viewer", "operator", "tenant-editor"])
def test_no_secret_reaches_a_non_admin(env: ConsoleEnv, role: str) -> None:
    h = env.auth(role)
    ctx = {"tenant": "acme"}
    bodies = [
        env.http.get("/api/v1/flags", params=ctx, headers=h),
        env.http.get("/api/v1/admin/feature-flags", params=ctx, headers=h),
        env.http.get(f"/api/v1/flags/{SECRET_KEY}/explain", params=ctx, headers=h),
        env.http.get("/api/v1/snapshots/2", headers=h),
        env.http.get("/api/v1/snapshots/1/diff/2", headers=h),
        env.http.get("/api/v1/overrides", headers=h),
        env.http.get("/api/v1/audit", headers=h),
    ]
    for r in bodies:
        assert r.status_code == 200
        assert SECRET not in r.text, r.url
    assert "***" in bodies[0].text
    env.http.post("/login", data={"token": env.secrets[role]})
    for page in (
        "flags?tenant=acme",
        "overrides",
        "tenants?tenant=acme&a=1&b=2",
        "history?a=1&b=2",
        "audit",
    ):
        assert SECRET not in env.http.get(f"/ui/{page}").text, page


def test_an_admin_sees_them(env: ConsoleEnv) -> None:
    h = env.auth("admin")
    flags = env.http.get(
        "/api/v1/admin/feature-flags", params={"tenant": "acme"}, headers=h
    ).json()["flags"]
    assert next(f for f in flags if f["name"] == SECRET_KEY)["value"] == SECRET + "-ov"
    doc = env.http.get("/api/v1/snapshots/2", headers=h).json()["document"]
    assert doc["tenants"]["acme"]["values"][SECRET_KEY] == SECRET
    assert SECRET in json.dumps(env.http.get("/api/v1/overrides", headers=h).json())
