"""Who may do what in the console: every role against every endpoint, revoked and
unknown tokens, dashboard sessions (HttpOnly, SameSite=Strict) and CSRF on every form,
on real SQLite and PostgreSQL stores."""

from __future__ import annotations

import re
from typing import Any

import pytest
from conftest import snapshot_part
from console_fixtures import REFUND, ConsoleEnv, env

from flagmw.stores.tokens import ROLES

__all__ = ["env"]

#: (method, path, JSON body, permission: read | operate | admin)
ENDPOINTS: list[tuple[str, str, Any, str]] = [
    ("GET", "/api/v1/flags", None, "read"),
    ("GET", "/api/v1/admin/feature-flags", None, "read"),
    ("GET", f"/api/v1/flags/{REFUND}/explain", None, "read"),
    ("GET", "/api/v1/snapshots", None, "read"),
    ("GET", "/api/v1/snapshots/1", None, "read"),
    ("GET", "/api/v1/snapshots/1/diff/1", None, "read"),
    ("GET", "/api/v1/overrides", None, "read"),
    ("GET", "/api/v1/audit", None, "read"),
    ("GET", "/api/v1/events?limit=1", None, "read"),
    ("POST", "/api/v1/overrides", {"key": REFUND, "reason": "matrix"}, "operate"),
    ("POST", "/api/v1/overrides/ov-1/renew", {"reason": "matrix"}, "operate"),
    ("POST", "/api/v1/overrides/ov-1/end", {"reason": "matrix"}, "operate"),
    ("POST", "/api/v1/snapshots", {"document": {}, "message": "m", "parent_rev": 1}, "admin"),
    ("POST", "/api/v1/snapshots/1/rollback", {"message": "m"}, "admin"),
    ("GET", "/api/v1/approvals", None, "read"),
    ("POST", "/api/v1/approvals/pp-1/approve", None, "admin"),
    ("POST", "/api/v1/approvals/pp-1/reject", {"reason": "matrix"}, "admin"),
    ("PUT", "/api/v1/tenants/acme/values/nope.flag", {"value": 1, "message": "m"}, "tenant"),
    ("GET", "/api/v1/tokens", None, "admin"),
    ("POST", "/api/v1/tokens", {"name": "new-one", "role": "viewer"}, "admin"),
    ("POST", "/api/v1/tokens/tok-99/revoke", {"reason": "matrix"}, "admin"),
]
ALLOWED = {
    "read": set(ROLES),
    "operate": {"operator", "admin"},
    "admin": {"admin"},
    "tenant": {"tenant-editor", "admin"},
}


def _call(env: ConsoleEnv, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
    if path.startswith("/api/v1/events"):
        # the stream would wait for a change: the first event answers the question
        with env.http.stream(method, path, headers=headers) as r:
            return r
    return env.http.request(method, path, json=body, headers=headers)


def test_every_role_against_every_endpoint(env: ConsoleEnv) -> None:
    # ov-1 exists, so renew / end have something to act on
    env.http.post(
        "/api/v1/overrides", json={"key": REFUND, "reason": "x"}, headers=env.auth("admin")
    )
    for method, path, body, permission in ENDPOINTS:
        for role in ROLES:
            before = env.state()
            r = _call(env, method, path, body, env.auth(role))
            if role in ALLOWED[permission]:
                assert r.status_code not in (401, 403), (role, method, path, r.status_code)
            else:
                assert r.status_code == 403, (role, method, path, r.status_code)
                assert role in r.json()["detail"]
                assert env.state() == before, (role, method, path)
        for headers in ({}, {"Authorization": "Bearer fmw_" + "x" * 43}, {"Authorization": "x"}):
            before = env.state()
            r = _call(env, method, path, body, headers)
            assert r.status_code == 401, (method, path, headers)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert env.state() == before


def test_a_revoked_token_fails_at_once(env: ConsoleEnv) -> None:
    ok = env.http.get("/api/v1/flags", headers=env.auth("operator"))
    assert ok.status_code == 200
    r = env.http.post(
        "/api/v1/tokens/tok-2/revoke", json={"reason": "left"}, headers=env.auth("admin")
    )
    assert (r.status_code, r.json()["name"]) == (200, "operator")
    assert env.http.get("/api/v1/flags", headers=env.auth("operator")).status_code == 401
    before = env.state()
    r = env.http.post(
        "/api/v1/overrides", json={"key": REFUND, "reason": "x"}, headers=env.auth("operator")
    )
    assert r.status_code == 401
    assert env.state() == before
    assert env.store.audit(1)[0].action == "token.revoke"
    assert env.store.audit(1)[0].actor == "admin"


def test_token_created_through_the_api_is_shown_once_and_works(env: ConsoleEnv) -> None:
    r = env.http.post(
        "/api/v1/tokens", json={"name": "ci-bot", "role": "operator"}, headers=env.auth("admin")
    )
    assert r.status_code == 201
    secret = r.json()["secret"]
    listed = env.http.get("/api/v1/tokens", headers=env.auth("admin")).text
    assert secret not in listed
    assert "ci-bot" in listed
    k = env.http.post(
        "/api/v1/overrides",
        json={"key": REFUND, "reason": "bot"},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert k.json()["actor"] == "ci-bot"
    bad = env.http.post(
        "/api/v1/tokens", json={"name": "has space", "role": "viewer"}, headers=env.auth("admin")
    )
    assert bad.status_code == 422
    role = env.http.post(
        "/api/v1/tokens", json={"name": "x", "role": "root"}, headers=env.auth("admin")
    )
    assert role.status_code == 422


def _sign_in(env: ConsoleEnv, role: str) -> str:
    """Sign in on the dashboard; the CSRF secret of the session."""
    r = env.http.post(
        "/login", data={"token": env.secrets[role], "next": "/ui/kills"}, follow_redirects=False
    )
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    page = env.http.get("/ui/kills")
    assert page.status_code == 200
    m = re.search(r'data-csrf="([^"]+)"', page.text)
    assert m is not None
    return m.group(1)


def test_sign_in_with_a_wrong_token_is_refused(env: ConsoleEnv) -> None:
    r = env.http.post("/login", data={"token": "fmw_nope"}, follow_redirects=False)
    assert r.status_code == 401
    assert "set-cookie" not in r.headers
    page = env.http.get("/ui/flags", follow_redirects=False)
    assert (page.status_code, page.headers["location"]) == (303, "/login?next=/ui/flags")


def test_every_form_needs_the_csrf_secret(env: ConsoleEnv) -> None:
    csrf = _sign_in(env, "admin")
    env.http.post(
        "/api/v1/overrides",
        json={"key": "agent.enabled", "reason": "x"},
        headers={"X-CSRF-Token": csrf},
    )
    forms = [
        ("/ui/kill", {"key": REFUND, "reason": "x", "reason_code": "incident", "ttl": "15m"}),
        ("/ui/overrides/ov-1/renew", {"ttl": "1h"}),
        ("/ui/overrides/ov-1/end", {"reason": "done"}),
        ("/ui/rollback", {"rev": "1", "message": "m"}),
        ("/ui/approvals/pp-1/approve", {}),
        ("/ui/approvals/pp-1/reject", {"reason": "no"}),
        ("/ui/tenants/acme/values/loop.max_iterations", {"value": "3", "message": "m"}),
        ("/logout", {}),
    ]
    for path, data in forms:
        for bad in ({}, {"csrf": "wrong"}):
            before = env.state()
            r = env.http.post(path, data={**data, **bad}, follow_redirects=False)
            assert r.status_code == 403, (path, bad)
            assert "CSRF" in r.json()["detail"]
            assert env.state() == before
    # the JSON API with a cookie needs the header too
    before = env.state()
    r = env.http.post("/api/v1/overrides", json={"key": REFUND, "reason": "x"})
    assert r.status_code == 403
    assert env.state() == before
    # with the secret, the kill form works
    r = env.http.post("/ui/kill", data={**forms[0][1], "csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert "ok=" in r.headers["location"]
    kill = env.store.list_overrides()[0]
    assert (kill.key, kill.actor, kill.reason) == (REFUND, "admin", "[incident] x")


def test_a_viewer_session_cannot_kill_and_sees_no_kill_button(env: ConsoleEnv) -> None:
    csrf = _sign_in(env, "viewer")
    page = env.http.get("/ui/kills").text
    assert 'action="/ui/kill"' not in page
    before = env.state()
    r = env.http.post(
        "/ui/kill", data={"key": REFUND, "reason": "x", "csrf": csrf}, follow_redirects=False
    )
    assert r.status_code == 403
    assert env.state() == before


def test_sign_out_and_revocation_end_a_session(env: ConsoleEnv) -> None:
    _sign_in(env, "operator")
    env.http.post("/api/v1/tokens/tok-2/revoke", json={"reason": "x"}, headers=env.auth("admin"))
    r = env.http.get("/ui/flags", follow_redirects=False)
    assert r.status_code == 303
    csrf = _sign_in(env, "admin")
    assert env.http.post("/logout", follow_redirects=False).status_code == 403
    env.http.post("/logout", data={"csrf": csrf}, follow_redirects=False)
    assert env.http.get("/ui/flags", follow_redirects=False).status_code == 303


def test_a_form_error_comes_back_with_the_cli_message(env: ConsoleEnv) -> None:
    csrf = _sign_in(env, "operator")
    before = env.state()
    r = env.http.post(
        "/ui/kill",
        data={"key": REFUND, "reason": "x", "ttl": "custom", "ttl_custom": "3d", "csrf": csrf},
    )
    assert r.status_code == 200
    assert "above the maximum" in r.text
    assert env.state() == before


@pytest.mark.parametrize(
    "page",
    [
        "flags",
        "kills",
        "overrides",
        "tenants?tenant=acme&a=1&b=1",
        "history?a=1&b=1",
        "audit",
        "hygiene",
    ],
)
def test_every_page_renders_for_a_viewer(env: ConsoleEnv, page: str) -> None:
    _sign_in(env, "viewer")
    r = env.http.get(f"/ui/{page}")
    assert r.status_code == 200
    assert '<main id="live"' in r.text
    partial = env.http.get(f"/ui/{page}", headers={"X-Flagmw-Partial": "1"})
    assert "<html" not in partial.text
    assert "content-security-policy" in r.headers


def test_publish_needs_admin_and_stays_a_publish(env: ConsoleEnv) -> None:
    r = env.http.post(
        "/api/v1/snapshots",
        json={"document": snapshot_part(), "message": "m", "parent_rev": 1},
        headers=env.auth("operator"),
    )
    assert r.status_code == 403


def test_cross_origin_posts_and_open_redirects_are_refused(env: ConsoleEnv) -> None:
    evil = {"Origin": "https://evil.example"}
    r = env.http.post(
        "/login", data={"token": env.secrets["admin"]}, headers=evil, follow_redirects=False
    )
    assert r.status_code == 403
    assert "set-cookie" not in r.headers
    csrf = _sign_in(env, "operator")
    before = env.state()
    r = env.http.post(
        "/ui/kill",
        data={"key": REFUND, "reason": "x", "csrf": csrf},
        headers=evil,
        follow_redirects=False,
    )
    assert r.status_code == 403
    assert env.state() == before
    for target in ("//evil.example/x", "/\\evil.example", "https://evil.example"):
        r = env.http.post(
            "/login",
            data={"token": env.secrets["viewer"], "next": target},
            follow_redirects=False,
        )
        assert r.headers["location"] == "/ui/flags", target
