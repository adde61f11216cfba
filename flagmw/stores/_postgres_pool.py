"""The PostgreSQL store's connections: the pool, and the read and write transactions
every operation of :class:`~flagmw.stores.postgres.PostgresStore` runs in.

* reads: ``REPEATABLE READ READ ONLY`` (several statements see one instant);
* writes: ``READ COMMITTED``, first locking the single ``changes`` row
  (``SELECT … FOR UPDATE``), which serialises writers across the fleet; the write bumps
  a change sequence and sends the notification (ids only) in the same transaction;
* pooled connections are checked before use (a connection the server dropped is replaced)
  and never use server-side prepared statements (pgbouncer in transaction mode);
* after ``fork()`` the child abandons the parent's pool and listener and opens its own.

Every psycopg or pool error becomes :class:`~flagmw.errors.StoreUnavailableError`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
from psycopg import IsolationLevel
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from flagmw.errors import StoreUnavailableError
from flagmw.stores._postgres_changes import payload

__all__ = ["Cursor", "Transactions", "describe", "reason"]

R = TypeVar("R")
Cursor = psycopg.Cursor[Any]


def describe(conninfo: str, schema: str) -> str:
    """``postgresql://user@host:port/db?schema=s`` without the password."""
    try:
        p = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return f"postgresql:?schema={schema}"
    user = f"{p['user']}@" if p.get("user") else ""
    port = f":{p['port']}" if p.get("port") else ""
    return f"postgresql://{user}{p.get('host', '')}{port}/{p.get('dbname', '')}?schema={schema}"


def reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Transactions:
    """The connection half of :class:`~flagmw.stores.postgres.PostgresStore` (a mixin);
    the store supplies its settings and the listener's ``_advance`` / ``_init_listener``."""

    if TYPE_CHECKING:
        name: str
        schema: str
        channel: str
        conninfo: str
        max_size: int
        timeout: float
        connect_timeout: float
        _s: str

        def _advance(self, seqs: tuple[int, int]) -> None: ...

        def _init_listener(self) -> None: ...

    _pool_lock: threading.Lock
    _pool: ConnectionPool[psycopg.Connection[Any]] | None

    def _get_pool(self) -> ConnectionPool[psycopg.Connection[Any]]:
        pool = self._pool
        if pool is not None:
            return pool
        with self._pool_lock:
            if self._pool is None:
                self._pool = ConnectionPool(
                    self.conninfo,
                    min_size=1,
                    max_size=self.max_size,
                    open=False,
                    # a connection the server dropped is replaced before it is used
                    check=ConnectionPool.check_connection,
                    kwargs={
                        # pg_stat_activity shows which store a session serves
                        "application_name": f"flagmw:{self.schema}",
                        # no server-side prepared statements: they do not survive
                        # pgbouncer's transaction pooling
                        "prepare_threshold": None,
                        "connect_timeout": max(1, round(self.connect_timeout)),
                    },
                    timeout=self.timeout,
                    name=f"flagmw-{self.schema}",
                )
                self._pool.open(wait=False)
            return self._pool

    def _after_fork(self) -> None:
        # Connections and threads do not cross fork(): abandon the parent's and start
        # again lazily in the child (psycopg never closes, in a child, a connection
        # opened by its parent, so the parent's sessions are left alone).
        self._pool = None
        self._pool_lock = threading.Lock()
        self._init_listener()

    def _read(self, work: Callable[[Cursor], R]) -> R:
        """Run ``work`` in a ``REPEATABLE READ READ ONLY`` transaction."""
        try:
            with self._get_pool().connection() as conn:
                conn.isolation_level = IsolationLevel.REPEATABLE_READ
                conn.read_only = True
                with conn.transaction(), conn.cursor() as cur:
                    return work(cur)
        except (psycopg.Error, PoolTimeout) as exc:
            raise StoreUnavailableError(self.name, reason(exc)) from None

    def _write(self, which: int, work: Callable[[Cursor], tuple[R, dict[str, Any]]]) -> R:
        """Run ``work`` in a write transaction holding the ``changes`` row lock; bump
        sequence ``which`` (0: snapshots, 1: overrides) and notify listeners with the
        ids ``work`` returns, in the same transaction."""
        s = self._s
        try:
            with self._get_pool().connection() as conn:
                conn.isolation_level = IsolationLevel.READ_COMMITTED
                conn.read_only = False
                with conn.transaction(), conn.cursor() as cur:
                    row = cur.execute(
                        f"SELECT snapshot_seq, override_seq FROM {s}.changes FOR UPDATE"
                    ).fetchone()
                    assert row is not None
                    result, ids = work(cur)
                    seqs = [int(row[0]), int(row[1])]
                    seqs[which] += 1
                    cur.execute(f"UPDATE {s}.changes SET snapshot_seq=%s, override_seq=%s", seqs)
                    cur.execute(
                        "SELECT pg_notify(%s, %s)",
                        (self.channel, payload((seqs[0], seqs[1]), **ids)),
                    )
        except (psycopg.Error, PoolTimeout) as exc:
            raise StoreUnavailableError(
                self.name, f"{reason(exc)} (the change was not committed)"
            ) from None
        self._advance((seqs[0], seqs[1]))  # this process knows at once
        return result

    def _wake_listener(self) -> None:
        try:
            with self._get_pool().connection(timeout=1.0) as conn:
                conn.execute("SELECT pg_notify(%s, 'wake')", (self.channel,))
        except (psycopg.Error, PoolTimeout):
            pass  # the listener wakes at its next poll instead
