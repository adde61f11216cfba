"""PostgresStore: the store of a fleet, in one schema of a PostgreSQL database.

The store is split by concept: this module holds :class:`PostgresStore` (the
:class:`~flagmw.stores.base.Store` operations) and the URL opener;
:mod:`flagmw.stores._postgres_pool` the pool and the read / write transactions;
:mod:`flagmw.stores._postgres_schema` the versioned migrations and the check at open;
:mod:`flagmw.stores._postgres_snapshots` the snapshot revs (a base per rev and its
changed tenant and route overlays, :mod:`flagmw.stores._postgres_overlays`);
:mod:`flagmw.stores._postgres_changes` LISTEN/NOTIFY behind
:meth:`PostgresStore.change_token`. Rows map to records as in the SQLite store
(:mod:`flagmw.stores._sqlite_rows`: same columns, same JSON text encoding).

Transactions: reads run in ``REPEATABLE READ READ ONLY`` (``read_state`` sees the
sequences and the data of one instant); every write first locks the single ``changes``
row (``SELECT … FOR UPDATE``), which serialises writers like SQLite's write lock, checks
its precondition (the expected parent rev), writes its rows and audit entry, bumps a
sequence and sends the notification — all in one transaction. See docs/stores-postgres.md.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import make_conninfo

from flagmw.core.overrides import Override
from flagmw.errors import NotFoundError, StoreUnavailableError
from flagmw.stores._postgres_changes import ChangeListener
from flagmw.stores._postgres_pool import Cursor, Transactions, describe, reason
from flagmw.stores._postgres_schema import SCHEMA_VERSION as SCHEMA_VERSION
from flagmw.stores._postgres_schema import check_schema_name, ensure_schema
from flagmw.stores._postgres_snapshots import PostgresSnapshots
from flagmw.stores._sqlite_rows import (
    AUDIT_COLUMNS,
    INFO_COLUMNS,
    OV_COLUMNS,
    dumps,
    row_to_audit,
    row_to_info,
    row_to_override,
)
from flagmw.stores.base import (
    AuditEntry,
    StoreState,
    override_audit_action,
    override_target,
)

__all__ = ["PostgresStore", "open_url"]


class PostgresStore(Transactions, ChangeListener, PostgresSnapshots):
    """A store in one schema of a PostgreSQL database, shared by a fleet of processes.

    Args:
        conninfo: a libpq connection string or URL (``postgresql://user@host/db``).
        schema: the PostgreSQL schema holding the store's tables (a plain lower-case
            name); several stores can share one database.
        create: create the schema and its tables when missing; with False (the
            default) a missing store raises :class:`~flagmw.errors.StoreUnavailableError`,
            so a typo never yields a new, empty store.
        migrate: apply pending migrations of an existing store at open.
        max_size: the largest number of pooled connections (reads and writes; the
            change listener has one more of its own).
        timeout: seconds to wait for a pooled connection before failing.
        connect_timeout: seconds to wait for the server at open and for the first
            notification-listener connection.
        poll_interval: seconds between the listener's safety-net reads of the change
            sequences (notifications normally arrive within milliseconds).
        stale_after: seconds without any sign of a live listener connection after which
            :meth:`change_token` raises (default ``3 * poll_interval``, at least 2 s).
        listen_conninfo: the listener's connection string when it must differ from
            ``conninfo`` (behind pgbouncer in transaction mode: a direct connection, see
            docs/stores-postgres.md); read at every reconnect.

    Raises:
        ValueError: a bad schema name.
        StoreUnavailableError: the server cannot be reached; no store in ``schema`` (and
            ``create`` is False); a schema version this flagmw does not read.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        schema: str = "flagmw",
        create: bool = False,
        migrate: bool = True,
        max_size: int = 4,
        timeout: float = 5.0,
        connect_timeout: float = 5.0,
        poll_interval: float = 1.0,
        stale_after: float | None = None,
        listen_conninfo: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        #: the store's clock (seconds since the epoch): the time of every audit entry
        self.clock = clock
        self._s = check_schema_name(schema)
        self.schema = schema
        self.conninfo = conninfo
        self.name = describe(conninfo, schema)
        self.channel = f"flagmw.{schema}"
        self.listen_conninfo = listen_conninfo or conninfo
        self.max_size = max_size
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.poll_interval = poll_interval
        self.stale_after = max(3 * poll_interval, 2.0) if stale_after is None else stale_after
        self._changes_sql = f"SELECT snapshot_seq, override_seq FROM {self._s}.changes"
        self._pool_lock = threading.Lock()
        self._pool = None
        self._init_listener()
        try:
            with psycopg.connect(
                conninfo, autocommit=True, connect_timeout=max(1, round(connect_timeout))
            ) as conn:
                self.schema_version = ensure_schema(
                    conn, schema, create=create, migrate=migrate, name=self.name
                )
        except psycopg.Error as exc:
            raise StoreUnavailableError(self.name, reason(exc)) from None
        ref = weakref.ref(self)

        def _child() -> None:
            store = ref()
            if store is not None:
                store._after_fork()

        os.register_at_fork(after_in_child=_child)

    # -- connections ---------------------------------------------------------------------

    # -- state ---------------------------------------------------------------------------

    def read_state(self, now: float) -> StoreState:
        s = self._s

        def work(cur: Cursor) -> StoreState:
            seqs = cur.execute(self._changes_sql).fetchone()
            head = cur.execute(
                f"SELECT {INFO_COLUMNS} FROM {s}.snapshots ORDER BY rev DESC LIMIT 1"
            ).fetchone()
            rows = cur.execute(
                f"SELECT {OV_COLUMNS} FROM {s}.overrides WHERE ended_at IS NULL "
                "AND expires_at > %s ORDER BY seq DESC",
                (now,),
            ).fetchall()
            assert seqs is not None
            token = (int(seqs[0]), int(seqs[1]))
            return StoreState(
                token, row_to_info(head) if head else None, [row_to_override(r) for r in rows]
            )

        state = self._read(work)
        self._advance(state.token)  # type: ignore[arg-type]  # our own (int, int)
        return state

    # -- overrides -----------------------------------------------------------------------

    def add_override(self, override: Override) -> Override:
        s = self._s

        def work(cur: Cursor) -> tuple[Override, dict[str, Any]]:
            top = cur.execute(f"SELECT coalesce(max(seq), 0) + 1 FROM {s}.overrides").fetchone()
            seq = int(top[0]) if top else 1
            ov = override.with_changes(id=f"ov-{seq}")
            cur.execute(
                f"INSERT INTO {s}.overrides(seq, id, key, value, kind, scope, target, reason, "
                "actor, created_at, expires_at, force, environment) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    seq,
                    ov.id,
                    ov.key,
                    dumps(ov.value),
                    ov.kind.value,
                    ov.scope.value,
                    ov.target,
                    ov.reason,
                    ov.actor,
                    ov.created_at,
                    ov.expires_at,
                    bool(ov.force),
                    ov.environment,
                ),
            )
            self._audit_row(
                cur,
                self.clock(),
                override_audit_action(ov),
                ov.actor,
                ov.reason,
                override_target(ov),
                None,
                ov.value,
                {"expires_at": ov.expires_at, "force": ov.force, "environment": ov.environment},
            )
            return ov, {"ov": ov.id}

        return self._write(1, work)

    def renew_override(
        self, override_id: str, expires_at: float, *, actor: str, reason: str, at: float
    ) -> Override:
        def work(cur: Cursor) -> tuple[Override, dict[str, Any]]:
            old = self._get_override(cur, override_id)
            cur.execute(
                f"UPDATE {self._s}.overrides SET expires_at=%s WHERE id=%s",
                (expires_at, override_id),
            )
            new = old.with_changes(expires_at=expires_at)
            self._audit_row(
                cur,
                self.clock(),
                f"{old.kind.value}.renew",
                actor,
                reason,
                override_target(new),
                {"expires_at": old.expires_at},
                {"expires_at": expires_at},
                {},
            )
            return new, {"ov": override_id}

        return self._write(1, work)

    def end_override(self, override_id: str, *, actor: str, reason: str, at: float) -> Override:
        def work(cur: Cursor) -> tuple[Override, dict[str, Any]]:
            old = self._get_override(cur, override_id)
            cur.execute(
                f"UPDATE {self._s}.overrides SET ended_at=%s, ended_by=%s, end_reason=%s "
                "WHERE id=%s",
                (at, actor, reason, override_id),
            )
            new = old.with_changes(ended_at=at, ended_by=actor, end_reason=reason)
            self._audit_row(
                cur,
                self.clock(),
                f"{old.kind.value}.end",
                actor,
                reason,
                override_target(new),
                old.value,
                None,
                {},
            )
            return new, {"ov": override_id}

        return self._write(1, work)

    def get_override(self, override_id: str) -> Override:
        return self._read(lambda cur: self._get_override(cur, override_id))

    def _get_override(self, cur: Cursor, override_id: str) -> Override:
        row = cur.execute(
            f"SELECT {OV_COLUMNS} FROM {self._s}.overrides WHERE id=%s", (override_id,)
        ).fetchone()
        if row is None:
            raise NotFoundError(
                f"no override {override_id!r} in {self.name} (see `flagmw overrides`)"
            )
        return row_to_override(row)

    def list_overrides(
        self, *, include_ended: bool = False, key: str | None = None
    ) -> list[Override]:
        clauses: list[str] = []
        params: list[Any] = []
        if not include_ended:
            clauses.append("ended_at IS NULL")
        if key is not None:
            clauses.append("key = %s")
            params.append(key)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._read(
            lambda cur: cur.execute(
                f"SELECT {OV_COLUMNS} FROM {self._s}.overrides {where} "
                "ORDER BY created_at DESC, seq DESC",
                params,
            ).fetchall()
        )
        return [row_to_override(r) for r in rows]

    # -- audit ---------------------------------------------------------------------------

    def _audit_row(
        self,
        cur: Cursor,
        at: float,
        action: str,
        actor: str,
        reason: str,
        target: str,
        before: Any,
        after: Any,
        details: Mapping[str, Any],
    ) -> None:
        """Append one audit row inside the caller's write transaction (the ``changes``
        row lock makes ``max(seq) + 1`` gapless and unique)."""
        cur.execute(
            f"INSERT INTO {self._s}.audit(seq, at, action, actor, reason, target, before, "
            f"after, details) SELECT coalesce(max(seq), 0) + 1, %s, %s, %s, %s, %s, %s, %s, %s "
            f"FROM {self._s}.audit",
            (at, action, actor, reason, target, dumps(before), dumps(after), dumps(details)),
        )

    def audit(self, limit: int = 100, *, action: str | None = None) -> list[AuditEntry]:
        s = self._s
        if action is None:
            sql = f"SELECT {AUDIT_COLUMNS} FROM {s}.audit ORDER BY seq DESC LIMIT %s"
            params: tuple[Any, ...] = (max(limit, 0),)
        else:
            sql = (
                f"SELECT {AUDIT_COLUMNS} FROM {s}.audit WHERE action=%s OR "
                "starts_with(action, %s) ORDER BY seq DESC LIMIT %s"
            )
            params = (action, action + ".", max(limit, 0))
        rows = self._read(lambda cur: cur.execute(sql, params).fetchall())
        return [row_to_audit(r) for r in rows]

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Stop the listener and close the pool; a later call opens them again."""
        self._stop_listener()
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PostgresStore({self.name!r})"


_OWN_PARAMS = ("schema", "listen_host", "listen_port")


def open_url(spec: str, *, create: bool) -> PostgresStore:
    """The opener of ``postgresql://…`` and ``postgres://…`` (see
    :mod:`flagmw.stores.url`).

    The URL is libpq's, plus flagmw's own query parameters: ``schema`` (default
    ``flagmw``), and ``listen_host`` / ``listen_port`` for a listener that must bypass a
    transaction-mode pgbouncer. Every other parameter (``sslmode``, ``connect_timeout``
    …) goes to libpq. Example: ``postgresql://app@db:6432/prod?schema=flags&listen_port=5432``.

    Raises:
        ValueError: a bad schema name.
        StoreUnavailableError: see :class:`PostgresStore`.
    """
    parts = urlsplit(spec)
    query = parse_qsl(parts.query, keep_blank_values=True)
    own = {k: v for k, v in query if k in _OWN_PARAMS}
    rest = [(k, v) for k, v in query if k not in _OWN_PARAMS]
    conninfo = urlunsplit(parts._replace(query=urlencode(rest)))
    listen: str | None = None
    if "listen_host" in own or "listen_port" in own:
        extra = {
            k.removeprefix("listen_"): v
            for k, v in own.items()
            if k in ("listen_host", "listen_port")
        }
        listen = make_conninfo(conninfo, **extra)
    return PostgresStore(
        conninfo, schema=own.get("schema") or "flagmw", create=create, listen_conninfo=listen
    )
