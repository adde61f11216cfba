"""Who is calling: API tokens (``Authorization: Bearer fmw_…``) and dashboard sessions
(an HttpOnly, SameSite=Strict cookie opened by signing in with a token), roles, CSRF.

The principal — the token's name — is the actor of everything done with it; no request
body can name another actor. A session is checked against its token at every request,
so revoking a token ends its sessions at once. A write made with a session cookie needs
the session's CSRF secret, as the form field ``csrf`` or the header ``X-CSRF-Token``.

Roles (``flagmw token create --role …``):

* ``viewer``: read everything (flags, values, explain, snapshots, diffs, overrides,
  audit), values of ``sensitive`` flags masked;
* ``tenant-editor``: what a viewer may, and set or clear, in one tenant's overlay, the
  value of a flag the registry marks ``tenant_editable`` (customer success);
* ``operator``: also kill, override, renew and end overrides;
* ``admin``: also publish, roll back, and create or revoke tokens; sees sensitive values.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import anyio
from fastapi import Request

from flagmw.console.problems import ApiProblem
from flagmw.console.state import Console
from flagmw.stores.tokens import ROLES, hash_secret

__all__ = [
    "COOKIE",
    "Principal",
    "admin",
    "authenticate",
    "check_csrf",
    "check_origin",
    "operator",
    "reader",
    "tenant_editor",
]

COOKIE = "flagmw_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

#: permission → the roles that have it
ALLOWED = {
    "read": frozenset(ROLES),
    "operate": frozenset({"operator", "admin"}),
    "admin": frozenset({"admin"}),
    "tenant": frozenset({"tenant-editor", "admin"}),
}
_WHAT = {
    "read": "read the console",
    "operate": "set, renew or end kills and overrides (operator or admin)",
    "admin": "publish, roll back or manage tokens (admin only)",
    "tenant": "edit a tenant's overlay (tenant-editor or admin)",
}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling.

    Attributes:
        name: the token's name: the audited actor.
        role: the token's role.
        token_id: ``tok-N``.
        csrf: the session's CSRF secret (None for a bearer token).
    """

    name: str
    role: str
    token_id: str
    csrf: str | None = None

    def can(self, permission: str) -> bool:
        """Whether the role has ``permission`` (``read``, ``operate``, ``admin``)."""
        return self.role in ALLOWED[permission]

    @property
    def sees_secrets(self) -> bool:
        """Whether values of ``sensitive`` flags are shown unmasked."""
        return self.role == "admin"


def _lookup(console: Console, token_hash: str) -> Principal | None:
    token = console.tokens.token_by_hash(token_hash)
    if token is None or not token.active:
        return None
    return Principal(token.name, token.role, token.id)


async def authenticate(request: Request) -> Principal | None:
    """The caller, from a bearer token or a session cookie; None when neither is valid
    (a revoked token, an unknown one, an expired session)."""
    console: Console = request.app.state.console
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, secret = header.partition(" ")
        token_hash = hash_secret(secret.strip()) if scheme.lower() == "bearer" else None
        if token_hash is None:
            return None
        return await anyio.to_thread.run_sync(_lookup, console, token_hash)
    sid = request.cookies.get(COOKIE)
    if not sid:
        return None
    session = console.session(sid)
    if session is None:
        return None
    found = await anyio.to_thread.run_sync(_lookup, console, session.token_hash)
    if found is None:
        console.close_session(sid)
        return None
    return Principal(found.name, found.role, found.token_id, session.csrf)


def check_origin(request: Request) -> None:
    """A browser's ``Origin`` header, when sent, names this console (defence in depth
    beside the CSRF secret and SameSite=Strict; also guards the sign-in form).

    Raises:
        ApiProblem: 403 for another origin.
    """
    origin = request.headers.get("origin")
    if origin is None:
        return
    host = request.headers.get("host", "")
    if origin.split("://", 1)[-1] != host:
        raise ApiProblem(403, f"cross-origin request from {origin} refused")


async def check_csrf(request: Request, principal: Principal) -> None:
    """A cookie-authenticated write carries the session's CSRF secret.

    Raises:
        ApiProblem: 403 when it does not.
    """
    if principal.csrf is None or request.method in SAFE_METHODS:
        return
    check_origin(request)
    given = request.headers.get("x-csrf-token")
    if given is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get("csrf")
        given = value if isinstance(value, str) else None
    if not given or not secrets.compare_digest(given, principal.csrf):
        raise ApiProblem(403, "missing or wrong CSRF token (reload the page and try again)")


def _need(permission: str):  # type: ignore[no-untyped-def]
    async def dependency(request: Request) -> Principal:
        principal = await authenticate(request)
        if principal is None:
            raise ApiProblem(
                401,
                "sign in: send `Authorization: Bearer <token>` (create one with "
                "`flagmw token create`); the token may be unknown or revoked",
            )
        if not principal.can(permission):
            raise ApiProblem(403, f"the {principal.role} role may not {_WHAT[permission]}")
        await check_csrf(request, principal)
        return principal

    return dependency


#: FastAPI dependencies: the principal, with the permission checked.
reader = _need("read")
operator = _need("operate")
admin = _need("admin")
tenant_editor = _need("tenant")
