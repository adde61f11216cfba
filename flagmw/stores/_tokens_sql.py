"""API tokens of the SQLite and PostgreSQL stores: the ``api_tokens`` table (SQLite
schema version 4, PostgreSQL migration 4), written with its audit entry in the store's
own write transaction. Token writes do not move the change token (no client needs them)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flagmw.errors import NotFoundError
from flagmw.stores._sqlite_rows import insert_audit
from flagmw.stores.tokens import ApiToken, TokenError, revoke_checks, token_target

if TYPE_CHECKING:  # pragma: no cover
    from flagmw.stores.postgres import PostgresStore
    from flagmw.stores.sqlite import SQLiteStore

__all__ = ["PostgresTokens", "SQLiteTokens"]

_COLUMNS = "id, name, role, created_at, created_by, revoked_at, revoked_by, revoke_reason"


def _row(row: Any) -> ApiToken:
    return ApiToken(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7])


def _duplicate(name: str) -> TokenError:
    return TokenError(f"an active token is already named {name!r}; revoke it first")


class SQLiteTokens:
    """The token store of a :class:`~flagmw.stores.sqlite.SQLiteStore`."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store

    def add_token(
        self, token_hash: str, name: str, role: str, *, actor: str, at: float
    ) -> ApiToken:
        with self.store._write() as (conn, _seqs):
            taken = conn.execute(
                "SELECT 1 FROM api_tokens WHERE name=? AND revoked_at IS NULL", (name,)
            ).fetchone()
            if taken:
                raise _duplicate(name)
            (n,) = conn.execute("SELECT count(*) FROM api_tokens").fetchone()
            token = ApiToken(f"tok-{n + 1}", name, role, at, actor)
            conn.execute(
                "INSERT INTO api_tokens(id, hash, name, role, created_at, created_by) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (token.id, token_hash, name, role, at, actor),
            )
            insert_audit(
                conn,
                self.store.clock(),
                "token.create",
                actor,
                f"role {role}",
                token_target(token),
                None,
                role,
                {},
            )
        return token

    def token_by_hash(self, token_hash: str) -> ApiToken | None:
        with self.store._read() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM api_tokens WHERE hash=?", (token_hash,)
            ).fetchone()
        return None if row is None else _row(row)

    def list_tokens(self) -> list[ApiToken]:
        with self.store._read() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM api_tokens ORDER BY seq").fetchall()
        return [_row(r) for r in rows]

    def revoke_token(self, token_id: str, *, actor: str, reason: str, at: float) -> ApiToken:
        with self.store._write() as (conn, _seqs):
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM api_tokens WHERE id=?", (token_id,)
            ).fetchone()
            old = revoke_checks(None if row is None else _row(row), token_id, NotFoundError)
            conn.execute(
                "UPDATE api_tokens SET revoked_at=?, revoked_by=?, revoke_reason=? WHERE id=?",
                (at, actor, reason, token_id),
            )
            new = ApiToken(
                old.id, old.name, old.role, old.created_at, old.created_by, at, actor, reason
            )
            insert_audit(
                conn,
                self.store.clock(),
                "token.revoke",
                actor,
                reason,
                token_target(new),
                old.role,
                None,
                {},
            )
        return new


class PostgresTokens:
    """The token store of a :class:`~flagmw.stores.postgres.PostgresStore`: writes hold
    the ``changes`` row lock like every write of the store (gapless audit seqs) but leave
    the sequences alone."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store
        self._s = store._s

    def _tx(self, work: Any) -> Any:
        import psycopg
        from psycopg import IsolationLevel
        from psycopg_pool import PoolTimeout

        from flagmw.errors import StoreUnavailableError
        from flagmw.stores._postgres_pool import reason

        try:
            with self.store._get_pool().connection() as conn:
                conn.isolation_level = IsolationLevel.READ_COMMITTED
                conn.read_only = False
                with conn.transaction(), conn.cursor() as cur:
                    cur.execute(f"SELECT 1 FROM {self._s}.changes FOR UPDATE")
                    return work(cur)
        except (psycopg.Error, PoolTimeout) as exc:
            raise StoreUnavailableError(
                self.store.name, f"{reason(exc)} (the change was not committed)"
            ) from None

    def add_token(
        self, token_hash: str, name: str, role: str, *, actor: str, at: float
    ) -> ApiToken:
        s = self._s

        def work(cur: Any) -> ApiToken:
            taken = cur.execute(
                f"SELECT 1 FROM {s}.api_tokens WHERE name=%s AND revoked_at IS NULL", (name,)
            ).fetchone()
            if taken:
                raise _duplicate(name)
            (n,) = cur.execute(f"SELECT count(*) FROM {s}.api_tokens").fetchone()
            token = ApiToken(f"tok-{n + 1}", name, role, at, actor)
            cur.execute(
                f"INSERT INTO {s}.api_tokens(seq, id, hash, name, role, created_at, "
                "created_by) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (n + 1, token.id, token_hash, name, role, at, actor),
            )
            self.store._audit_row(
                cur,
                self.store.clock(),
                "token.create",
                actor,
                f"role {role}",
                token_target(token),
                None,
                role,
                {},
            )
            return token

        result: ApiToken = self._tx(work)
        return result

    def token_by_hash(self, token_hash: str) -> ApiToken | None:
        row = self.store._read(
            lambda cur: cur.execute(
                f"SELECT {_COLUMNS} FROM {self._s}.api_tokens WHERE hash=%s", (token_hash,)
            ).fetchone()
        )
        return None if row is None else _row(row)

    def list_tokens(self) -> list[ApiToken]:
        rows = self.store._read(
            lambda cur: cur.execute(
                f"SELECT {_COLUMNS} FROM {self._s}.api_tokens ORDER BY seq"
            ).fetchall()
        )
        return [_row(r) for r in rows]

    def revoke_token(self, token_id: str, *, actor: str, reason: str, at: float) -> ApiToken:
        s = self._s

        def work(cur: Any) -> ApiToken:
            row = cur.execute(
                f"SELECT {_COLUMNS} FROM {s}.api_tokens WHERE id=%s", (token_id,)
            ).fetchone()
            old = revoke_checks(None if row is None else _row(row), token_id, NotFoundError)
            cur.execute(
                f"UPDATE {s}.api_tokens SET revoked_at=%s, revoked_by=%s, revoke_reason=%s "
                "WHERE id=%s",
                (at, actor, reason, token_id),
            )
            new = ApiToken(
                old.id, old.name, old.role, old.created_at, old.created_by, at, actor, reason
            )
            self.store._audit_row(
                cur,
                self.store.clock(),
                "token.revoke",
                actor,
                reason,
                token_target(new),
                old.role,
                None,
                {},
            )
            return new

        result: ApiToken = self._tx(work)
        return result
