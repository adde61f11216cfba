"""The rollout store in a flag store's PostgreSQL schema: tables ``rollout_docs`` and
``rollout_log`` (migrated on first open, under an advisory lock so that a fleet
starting at once migrates once)."""

from __future__ import annotations

import json
import threading
from typing import Any

import psycopg

from flagmw.errors import StoreUnavailableError
from flagmw.rollout.store import RolloutStore, dumps
from flagmw.rollout.stores._sql import LATEST, MIGRATIONS
from flagmw.stores._postgres_schema import check_schema_name

__all__ = ["PostgresRolloutStore"]


class PostgresRolloutStore(RolloutStore):
    """Args: conninfo: the flag store's connection string; schema: its schema.

    Raises:
        ValueError: a bad schema name.
        StoreUnavailableError: the server cannot be reached or the schema migrated.
    """

    def __init__(self, conninfo: str, schema: str, *, name: str = "") -> None:
        self._s = check_schema_name(schema)
        self.name = name or f"postgres schema {schema}"
        self.conninfo = conninfo
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        with self._lock:
            self._db()

    def _db(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        try:
            conn = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5)
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self._s + ".rollout",))
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {self._s}.rollout_meta "
                    "(k TEXT PRIMARY KEY, v INTEGER NOT NULL)"
                )
                row = conn.execute(
                    f"SELECT v FROM {self._s}.rollout_meta WHERE k = 'schema_version'"
                ).fetchone()
                have = int(row[0]) if row else 0
                if have > LATEST:
                    raise StoreUnavailableError(
                        self.name, f"rollout schema version {have} is newer than {LATEST}"
                    )
                for v in range(have + 1, LATEST + 1):
                    for stmt in MIGRATIONS[v]:
                        conn.execute(
                            stmt.format(
                                p=f"{self._s}.",
                                i="",
                                serial="BIGSERIAL PRIMARY KEY",
                                real="DOUBLE PRECISION",
                            )
                        )
                conn.execute(
                    f"INSERT INTO {self._s}.rollout_meta VALUES ('schema_version', %s) "
                    "ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v",
                    (max(have, LATEST),),
                )
        except psycopg.Error as exc:
            raise StoreUnavailableError(self.name, f"rollout tables: {exc}") from None
        self._conn = conn
        return conn

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            try:
                cur = self._db().execute(sql, args)
                return cur.fetchall() if cur.description else []
            except psycopg.OperationalError as exc:
                self._conn = None
                raise StoreUnavailableError(self.name, str(exc)) from None
            except psycopg.Error as exc:
                raise StoreUnavailableError(self.name, str(exc)) from None

    def _insert(self, kind: str, id: str, doc: dict[str, Any]) -> dict[str, Any] | None:
        rows = self._run(
            f"INSERT INTO {self._s}.rollout_docs VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (kind, id) DO NOTHING RETURNING 1",
            (kind, id, int(doc.get("seq", 0)), dumps(doc)),
        )
        return None if rows else self._get(kind, id)

    def _cas(self, kind: str, id: str, doc: dict[str, Any], expected: int) -> bool:
        if expected == 0:
            sql = (
                f"INSERT INTO {self._s}.rollout_docs VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (kind, id) DO NOTHING RETURNING 1"
            )
            return bool(self._run(sql, (kind, id, 1, dumps(doc))))
        sql = (
            f"UPDATE {self._s}.rollout_docs SET seq = %s, doc = %s "
            "WHERE kind = %s AND id = %s AND seq = %s RETURNING 1"
        )
        return bool(self._run(sql, (expected + 1, dumps(doc), kind, id, expected)))

    def _get(self, kind: str, id: str) -> dict[str, Any] | None:
        rows = self._run(
            f"SELECT doc FROM {self._s}.rollout_docs WHERE kind = %s AND id = %s", (kind, id)
        )
        return dict(json.loads(rows[0][0])) if rows else None

    def _list(self, kind: str) -> list[dict[str, Any]]:
        rows = self._run(
            f"SELECT doc FROM {self._s}.rollout_docs WHERE kind = %s ORDER BY id", (kind,)
        )
        return [dict(json.loads(r[0])) for r in rows]

    def _append(self, kind: str, at: float, docs: list[dict[str, Any]]) -> None:
        with self._lock:
            try:
                with self._db().cursor() as cur:
                    cur.executemany(
                        f"INSERT INTO {self._s}.rollout_log (kind, at, doc) VALUES (%s, %s, %s)",
                        [(kind, float(d.get("at", at)), dumps(d)) for d in docs],
                    )
            except psycopg.Error as exc:
                self._conn = None
                raise StoreUnavailableError(self.name, str(exc)) from None

    def _read_log(self, kind: str, since: float, limit: int) -> list[dict[str, Any]]:
        rows = self._run(
            f"SELECT doc FROM (SELECT n, at, doc FROM {self._s}.rollout_log WHERE kind = %s "
            "AND at >= %s ORDER BY at DESC, n DESC LIMIT %s) t ORDER BY at, n",
            (kind, since, limit),
        )
        return [dict(json.loads(r[0])) for r in rows]

    def _prune(self, kind: str, before: float) -> int:
        rows = self._run(
            f"DELETE FROM {self._s}.rollout_log WHERE kind = %s AND at < %s RETURNING 1",
            (kind, before),
        )
        return len(rows)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
