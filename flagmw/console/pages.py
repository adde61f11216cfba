"""The dashboard's pages (server-rendered Jinja2): flags, kill switches, active overrides,
tenant view, history and diff, audit log, hygiene; sign-in and sign-out.

Every page reads through the same client and views as the API. ``static/console.js``
(vendored, no CDN) opens the event stream and refreshes the ``#live`` part of the page
when something changes; without JavaScript every page and form still works.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from flagmw.console.api_overrides import REASON_CODES
from flagmw.console.api_snapshots import tenant_changes
from flagmw.console.auth import COOKIE, Principal, authenticate, check_csrf, check_origin
from flagmw.console.secrets import Masker
from flagmw.console.state import Console
from flagmw.console.views import (
    audit_page,
    change_dict,
    context_from,
    flag_rows,
    override_row,
    served_document,
)
from flagmw.core.context import EvaluationContext
from flagmw.errors import FlagmwError
from flagmw.stores.tokens import hash_secret

__all__ = ["render", "router", "templates"]

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
_Text = Annotated[str, Query(max_length=256)]

#: The TTL presets of the kill dialog.
TTL_PRESETS = ("15m", "1h", "4h")
#: At most this many tenants / routes are offered as suggestions in a form (any name can
#: be typed); at most this many kill switches are shown at once (search narrows them).
MAX_SUGGESTIONS = 500
MAX_SWITCHES = 100
#: Rows of the flags table per page.
FLAGS_PAGE = 200


def _names(section: Any) -> list[str]:
    """The first :data:`MAX_SUGGESTIONS` names of a snapshot section, sorted."""
    out: list[str] = []
    for name in sorted(section):
        if len(out) == MAX_SUGGESTIONS:
            break
        out.append(name)
    return out


def _fmt_time(t: float | None) -> str:
    if t is None:
        return "-"
    return _dt.datetime.fromtimestamp(t, _dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _fmt_left(seconds: float) -> str:
    s = int(max(0, seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h {m:02d}m {sec:02d}s" if h else f"{m}m {sec:02d}s"


templates.env.filters["time"] = _fmt_time
templates.env.filters["left"] = _fmt_left


def _console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def render(request: Request, who: Principal, name: str, **ctx: Any) -> Response:
    """Render a page (or only its ``#live`` part for the live refresh)."""
    partial = request.headers.get("x-flagmw-partial") == "1"
    return templates.TemplateResponse(
        request,
        name,
        {
            "who": who,
            "partial": partial,
            "msg": request.query_params.get("ok"),
            "err": request.query_params.get("error"),
            "page": name.removesuffix(".html"),
            "webhook_failure": _console(request).metrics.webhook_last_failure,
            **ctx,
        },
    )


def _login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)


# -- sign in / out ----------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    return RedirectResponse("/ui/flags", status_code=303)


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: _Text = "/ui/flags") -> Response:
    return templates.TemplateResponse(request, "login.html", {"next": next, "err": None})


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    token: Annotated[str, Form(max_length=200)],
    next: Annotated[str, Form(max_length=256)] = "/ui/flags",
) -> Response:
    check_origin(request)
    console = _console(request)
    digest = hash_secret(token.strip())
    found = None
    if digest is not None:
        found = await anyio.to_thread.run_sync(console.tokens.token_by_hash, digest)
    if digest is None or found is None or not found.active:
        return templates.TemplateResponse(
            request,
            "login.html",
            {"next": next, "err": "unknown or revoked token"},
            status_code=401,
        )
    sid, _ = console.open_session(digest)
    safe = next.startswith("/") and not next.startswith(("//", "/\\")) and "\\" not in next
    target = next if safe else "/ui/flags"
    resp = RedirectResponse(target, status_code=303)
    resp.set_cookie(
        COOKIE,
        sid,
        httponly=True,
        samesite="strict",
        secure=console.secure_cookies,
        path="/",
    )
    return resp


@router.post("/logout")
async def logout(request: Request) -> Response:
    who = await authenticate(request)
    if who is not None:
        await check_csrf(request, who)  # 403 without the session's secret
    sid = request.cookies.get(COOKIE)
    if sid:
        _console(request).close_session(sid)
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(COOKIE, path="/")
    return resp


# -- pages -------------------------------------------------------------------------------------


def _ctx(tenant: str, route: str) -> EvaluationContext:
    return context_from(tenant=tenant, route=route)


@router.get("/ui/flags", response_class=HTMLResponse)
async def flags_page(
    request: Request,
    q: _Text = "",
    tag: _Text = "",
    tenant: _Text = "",
    route: _Text = "",
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    who = await authenticate(request)
    if who is None:
        return _login_redirect(request)
    console = _console(request)

    def work() -> dict[str, Any]:
        client = console.client
        today = _dt.datetime.fromtimestamp(console.clock(), _dt.UTC).date()
        rows = flag_rows(client, _ctx(tenant, route), show_secrets=who.sees_secrets, today=today)
        tags = sorted({t for r in rows for t in r["tags"]})
        needle = q.strip().lower()
        if needle:
            rows = [
                r
                for r in rows
                if needle in r["key"].lower()
                or needle in r["description"].lower()
                or needle in r["owner"].lower()
            ]
        if tag:
            rows = [r for r in rows if tag in r["tags"]]
        doc = served_document(client)
        start = (page - 1) * FLAGS_PAGE
        return {
            "rows": rows[start : start + FLAGS_PAGE],
            "matched": len(rows),
            "page_no": page,
            "pages": max(1, -(-len(rows) // FLAGS_PAGE)),
            "tags": tags,
            "q": q,
            "tag": tag,
            "tenant": tenant,
            "route": route,
            "tenants": _names(doc["tenants"]),
            "routes": _names(doc["routes"]),
            "rev": client.snapshot_rev,
            "total": len(client.registry),
        }

    try:
        data = await anyio.to_thread.run_sync(work)
    except FlagmwError as exc:
        return render(request, who, "error.html", error=str(exc))
    return render(request, who, "flags.html", **data)


@router.get("/ui/kills", response_class=HTMLResponse)
async def kills_page(request: Request, key: _Text = "", q: _Text = "") -> Response:
    who = await authenticate(request)
    if who is None:
        return _login_redirect(request)
    console = _console(request)

    def work() -> dict[str, Any]:
        client = console.client
        now = console.clock()
        live = [o for o in console.store.list_overrides() if o.active_at(now)]
        killed = {(o.key, o.scope_label): o for o in live if o.value is False}
        needle = (key or q).strip().lower()
        hot = [
            f
            for f in client.registry
            if f.type.value == "bool" and f.hot and (not needle or needle in f.key.lower())
        ]
        killed_keys = {k for k, _ in killed}
        hot.sort(key=lambda f: f.key not in killed_keys)  # killed first, else registry order
        switches = [
            {
                "flag": f,
                "kills": [override_row(o, now) for (k, _), o in killed.items() if k == f.key],
                "exempt": client.exempt_tenants(f.key) if f.protected else [],
            }
            for f in hot[:MAX_SWITCHES]
        ]
        doc = served_document(client)
        return {
            "switches": switches,
            "focus": key,
            "q": q,
            "hidden": len(hot) - len(switches),
            "reason_codes": REASON_CODES,
            "presets": TTL_PRESETS,
            "max_ttl": _fmt_left(console.max_ttl),
            "tenants": _names(doc["tenants"]),
            "routes": _names(doc["routes"]),
        }

    return render(request, who, "kills.html", **(await anyio.to_thread.run_sync(work)))


@router.get("/ui/overrides", response_class=HTMLResponse)
async def overrides_page(request: Request) -> Response:
    who = await authenticate(request)
    if who is None:
        return _login_redirect(request)
    console = _console(request)

    def work() -> dict[str, Any]:
        now = console.clock()
        every = console.store.list_overrides()
        mask = Masker(console.client, show=who.sees_secrets)
        rows = [mask.override(override_row(o, now)) for o in every if o.active_at(now)]
        return {"rows": rows, "now": now, "presets": TTL_PRESETS}

    return render(request, who, "overrides.html", **(await anyio.to_thread.run_sync(work)))


@router.get("/ui/tenants", response_class=HTMLResponse)
async def tenant_page(
    request: Request,
    tenant: _Text = "",
    a: Annotated[int | None, Query()] = None,
    b: Annotated[int | None, Query()] = None,
) -> Response:
    who = await authenticate(request)
    if who is None:
        return _login_redirect(request)
    console = _console(request)

    def work() -> dict[str, Any]:
        client = console.client
        doc = served_document(client)
        out: dict[str, Any] = {
            "tenant": tenant,
            "tenants": _names(doc["tenants"]),
            "rows": [],
            "editable": set(),
            "overlay": None,
            "changes": None,
            "a": a,
            "b": b,
            "revs": [i.rev for i in client.history(50)],
        }
        if tenant:
            today = _dt.datetime.fromtimestamp(console.clock(), _dt.UTC).date()
            out["rows"] = flag_rows(
                client, _ctx(tenant, ""), show_secrets=who.sees_secrets, today=today
            )
            mask = Masker(client, show=who.sees_secrets)
            out["overlay"] = mask.document(doc["tenants"].get(tenant))
            out["editable"] = {f.key for f in client.registry if f.tenant_editable}
            if a is not None and b is not None:
                changes = mask.changes(change_dict(c) for c in console.diff(a, b))
                out["changes"] = tenant_changes(changes, tenant)
        return out

    try:
        data = await anyio.to_thread.run_sync(work)
    except FlagmwError as exc:
        return render(request, who, "error.html", error=str(exc))
    return render(request, who, "tenant.html", **data)


@router.get("/ui/history", response_class=HTMLResponse)
async def history_page(
    request: Request,
    a: Annotated[int | None, Query()] = None,
    b: Annotated[int | None, Query()] = None,
) -> Response:
    who = await authenticate(request)
    if who is None:
        return _login_redirect(request)
    console = _console(request)

    def work() -> dict[str, Any]:
        client = console.client
        revs = client.history(100)
        changes = None
        if a is not None and b is not None:
            mask = Masker(client, show=who.sees_secrets)
            changes = mask.changes(change_dict(c) for c in console.diff(a, b))
        pending = [p.to_dict() for p in console.approvals.pending()]
        return {"revs": revs, "a": a, "b": b, "changes": changes, "pending": pending}

    try:
        data = await anyio.to_thread.run_sync(work)
    except FlagmwError as exc:
        return render(request, who, "error.html", error=str(exc))
    return render(request, who, "history.html", **data)


@router.get("/ui/audit", response_class=HTMLResponse)
async def audit_view(
    request: Request,
    actor: _Text = "",
    key: _Text = "",
    kind: _Text = "",
    before: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    who = await authenticate(request)
    if who is None:
        return _login_redirect(request)
    console = _console(request)
    entries, nxt = await anyio.to_thread.run_sync(
        lambda: audit_page(
            console.store,
            actor=actor or None,
            key=key or None,
            kind=kind or None,
            before=before,
            limit=50,
        )
    )
    mask = Masker(console.client, show=who.sees_secrets)
    return render(
        request,
        who,
        "audit.html",
        entries=[mask.audit(e.to_dict()) for e in entries],
        next_before=nxt,
        actor=actor,
        key=key,
        kind=kind,
    )


@router.get("/ui/hygiene", response_class=HTMLResponse)
async def hygiene_page(request: Request) -> Response:
    who = await authenticate(request)
    if who is None:
        return _login_redirect(request)
    console = _console(request)
    client = console.client
    today = _dt.datetime.fromtimestamp(console.clock(), _dt.UTC).date()
    expired = [f for f in client.registry if f.expires is not None and f.expires < today]
    unowned = [f for f in client.registry if not f.owner]
    unused = await anyio.to_thread.run_sync(console.unused_flags)
    return render(
        request,
        who,
        "hygiene.html",
        expired=expired,
        unowned=unowned,
        unused=unused,
        code_paths=console.code_paths,
    )
