"""API tokens of the operator console (``flagmw serve``): who may call it, with which role.

A token is ``fmw_`` followed by 43 URL-safe characters (32 random bytes from
:mod:`secrets`). It is shown once, when created; the store keeps only its SHA-256
(:func:`hash_secret`), so a leaked database does not leak a usable token. A presented
token is looked up by that hash.

Tokens live beside the store's snapshots, overrides and audit log, in a small module per
backend (not in the :class:`~flagmw.stores.base.Store` protocol, which the evaluation
path depends on): :func:`token_store` returns the token store of any store —
memory, SQLite (table ``api_tokens``, schema version 4), PostgreSQL (migration 4) and
Redis (hash ``tokens``). Every creation and revocation is written to the store's audit
log (``token.create``, ``token.revoke``) in the same transaction; tokens are never
deleted (a revoked one stays, with who revoked it and why).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from flagmw.errors import FlagmwError
from flagmw.stores.base import Store

__all__ = [
    "ROLES",
    "ApiToken",
    "TokenError",
    "TokenStore",
    "check_token_name",
    "hash_secret",
    "new_secret",
    "token_store",
]

#: The roles a token can have (docs/console.md says what each may do).
ROLES = ("viewer", "operator", "admin", "tenant-editor")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_SECRET = re.compile(r"^fmw_[A-Za-z0-9_-]{43}$")


class TokenError(FlagmwError, ValueError):
    """A bad token name or role, a duplicate name, or a token that cannot be revoked."""


@dataclass(frozen=True, slots=True)
class ApiToken:
    """One API token (never its secret).

    Attributes:
        id: ``tok-N``.
        name: the principal: the actor of everything done with the token.
        role: one of :data:`ROLES`.
        created_at / created_by: when (seconds since the epoch) and by whom.
        revoked_at / revoked_by / revoke_reason: set once, when revoked.
    """

    id: str
    name: str
    role: str
    created_at: float
    created_by: str
    revoked_at: float | None = None
    revoked_by: str | None = None
    revoke_reason: str | None = None

    @property
    def active(self) -> bool:
        """Not revoked."""
        return self.revoked_at is None

    def to_dict(self) -> dict[str, Any]:
        """JSON primitives."""
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "revoked_at": self.revoked_at,
            "revoked_by": self.revoked_by,
            "revoke_reason": self.revoke_reason,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ApiToken:
        """Inverse of :meth:`to_dict`."""
        return cls(
            d["id"],
            d["name"],
            d["role"],
            d["created_at"],
            d["created_by"],
            d.get("revoked_at"),
            d.get("revoked_by"),
            d.get("revoke_reason"),
        )


def new_secret() -> str:
    """A new token secret: ``fmw_`` + 32 random bytes, URL-safe base64 (43 characters)."""
    return "fmw_" + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str | None:
    """The stored form of a token: the hex SHA-256 of the secret; None for text that is
    not a token at all (so it is never looked up)."""
    if not isinstance(secret, str) or not _SECRET.match(secret):
        return None
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def check_token_name(name: str, role: str) -> None:
    """A token name is 1-64 of ``A-Z a-z 0-9 _ . @ -`` (it becomes the audited actor);
    the role one of :data:`ROLES`.

    Raises:
        TokenError: otherwise.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise TokenError(
            f"token name {name!r}: use 1-64 letters, digits, '_', '.', '@' or '-' "
            "(it is the actor audited for everything done with the token)"
        )
    if role not in ROLES:
        raise TokenError(f"role {role!r}: use one of {', '.join(ROLES)}")


class TokenStore(Protocol):
    """Where a store keeps its API tokens (one implementation per backend)."""

    def add_token(
        self, token_hash: str, name: str, role: str, *, actor: str, at: float
    ) -> ApiToken:
        """Store a new token (its id is assigned here), audited as ``token.create``.

        Raises:
            TokenError: an active token already has ``name``.
        """
        ...

    def token_by_hash(self, token_hash: str) -> ApiToken | None:
        """The token with this hash (revoked ones included), or None."""
        ...

    def list_tokens(self) -> list[ApiToken]:
        """Every token, oldest first."""
        ...

    def revoke_token(self, token_id: str, *, actor: str, reason: str, at: float) -> ApiToken:
        """Revoke a token, audited as ``token.revoke``.

        Raises:
            NotFoundError: no such token.
            TokenError: it was revoked already.
        """
        ...


def token_store(store: Store) -> TokenStore:
    """The token store of ``store`` (memory, SQLite, PostgreSQL or Redis).

    Raises:
        TypeError: another kind of store.
    """
    from flagmw.stores.memory import MemoryStore
    from flagmw.stores.sqlite import SQLiteStore

    if isinstance(store, MemoryStore):
        from flagmw.stores._tokens_memory import MemoryTokens

        return MemoryTokens(store)
    if isinstance(store, SQLiteStore):
        from flagmw.stores._tokens_sql import SQLiteTokens

        return SQLiteTokens(store)
    kind = type(store).__name__
    if kind == "PostgresStore":  # by name: psycopg is imported only for such a store
        from flagmw.stores._tokens_sql import PostgresTokens
        from flagmw.stores.postgres import PostgresStore

        assert isinstance(store, PostgresStore)
        return PostgresTokens(store)
    if kind == "RedisStore":
        from flagmw.stores._tokens_redis import RedisTokens
        from flagmw.stores.redis import RedisStore

        assert isinstance(store, RedisStore)
        return RedisTokens(store)
    raise TypeError(f"{store.name}: this kind of store ({kind}) keeps no API tokens")


def revoke_checks(
    token: ApiToken | None, token_id: str, not_found: Callable[[str], Exception]
) -> ApiToken:
    """The checks before a revocation, shared by the backends."""
    if token is None:
        raise not_found(f"no API token {token_id!r} (see `flagmw token list`)")
    if not token.active:
        raise TokenError(f"{token_id} was revoked at {token.revoked_at} by {token.revoked_by}")
    return token


def token_target(token: ApiToken) -> str:
    """The audit ``target`` of a token."""
    return f"{token.id} {token.name} ({token.role})"
