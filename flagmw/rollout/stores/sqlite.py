"""The rollout store in a flag store's SQLite file: tables ``flagmw_rollout_docs`` and
``flagmw_rollout_log``, created (migrated) on first open, in the same WAL database."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from typing import Any

from flagmw.errors import StoreUnavailableError
from flagmw.rollout.store import RolloutStore, dumps
from flagmw.rollout.stores._sql import LATEST, MIGRATIONS

__all__ = ["SQLiteRolloutStore"]


class SQLiteRolloutStore(RolloutStore):
    """Args: path: the flag store's database file; name: for messages.

    Raises:
        StoreUnavailableError: the file cannot be opened or migrated.
    """

    def __init__(self, path: str | os.PathLike[str], *, name: str = "") -> None:
        self.path = path
        self.name = name or f"sqlite:{path}"
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._conn: sqlite3.Connection | None = None
        with self._lock:
            self._db()

    def _db(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        try:
            conn = sqlite3.connect(
                self.path, timeout=10.0, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA busy_timeout=10000")
            self._migrate(conn)
        except sqlite3.Error as exc:
            raise StoreUnavailableError(self.name, f"rollout tables: {exc}") from None
        self._conn, self._pid = conn, os.getpid()
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS flagmw_rollout_meta (k TEXT PRIMARY KEY, v INTEGER)"
            )
            row = conn.execute(
                "SELECT v FROM flagmw_rollout_meta WHERE k = 'schema_version'"
            ).fetchone()
            have = int(row[0]) if row else 0
            if have > LATEST:
                raise sqlite3.DatabaseError(
                    f"rollout schema version {have} is newer than this flagmw reads ({LATEST})"
                )
            for v in range(have + 1, LATEST + 1):
                for stmt in MIGRATIONS[v]:
                    conn.execute(
                        stmt.format(
                            p="flagmw_", i="flagmw_", serial="INTEGER PRIMARY KEY", real="REAL"
                        )
                    )
            conn.execute(
                "INSERT OR REPLACE INTO flagmw_rollout_meta VALUES ('schema_version', ?)",
                (max(have, LATEST),),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._db().execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise StoreUnavailableError(self.name, str(exc)) from None

    def _insert(self, kind: str, id: str, doc: dict[str, Any]) -> dict[str, Any] | None:
        with self._lock:
            conn = self._db()
            try:
                conn.execute("BEGIN IMMEDIATE")
                row = conn.execute(
                    "SELECT doc FROM flagmw_rollout_docs WHERE kind = ? AND id = ?", (kind, id)
                ).fetchone()
                if row is None:
                    conn.execute(
                        "INSERT INTO flagmw_rollout_docs VALUES (?, ?, ?, ?)",
                        (kind, id, int(doc.get("seq", 0)), dumps(doc)),
                    )
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise StoreUnavailableError(self.name, str(exc)) from None
        return None if row is None else dict(json.loads(row[0]))

    def _cas(self, kind: str, id: str, doc: dict[str, Any], expected: int) -> bool:
        with self._lock:
            conn = self._db()
            try:
                if expected == 0:
                    cur = conn.execute(
                        "INSERT OR IGNORE INTO flagmw_rollout_docs VALUES (?, ?, ?, ?)",
                        (kind, id, expected + 1, dumps(doc)),
                    )
                else:
                    cur = conn.execute(
                        "UPDATE flagmw_rollout_docs SET seq = ?, doc = ? "
                        "WHERE kind = ? AND id = ? AND seq = ?",
                        (expected + 1, dumps(doc), kind, id, expected),
                    )
            except sqlite3.Error as exc:
                raise StoreUnavailableError(self.name, str(exc)) from None
            return cur.rowcount == 1

    def _get(self, kind: str, id: str) -> dict[str, Any] | None:
        rows = self._run(
            "SELECT doc FROM flagmw_rollout_docs WHERE kind = ? AND id = ?", (kind, id)
        )
        return dict(json.loads(rows[0][0])) if rows else None

    def _list(self, kind: str) -> list[dict[str, Any]]:
        rows = self._run("SELECT doc FROM flagmw_rollout_docs WHERE kind = ? ORDER BY id", (kind,))
        return [dict(json.loads(r[0])) for r in rows]

    def _append(self, kind: str, at: float, docs: list[dict[str, Any]]) -> None:
        with self._lock:
            conn = self._db()
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(
                    "INSERT INTO flagmw_rollout_log (kind, at, doc) VALUES (?, ?, ?)",
                    [(kind, float(d.get("at", at)), dumps(d)) for d in docs],
                )
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise StoreUnavailableError(self.name, str(exc)) from None

    def _read_log(self, kind: str, since: float, limit: int) -> list[dict[str, Any]]:
        rows = self._run(
            "SELECT doc FROM (SELECT n, at, doc FROM flagmw_rollout_log WHERE kind = ? AND "
            "at >= ? ORDER BY at DESC, n DESC LIMIT ?) ORDER BY at, n",
            (kind, since, limit),
        )
        return [dict(json.loads(r[0])) for r in rows]

    def _prune(self, kind: str, before: float) -> int:
        with self._lock:
            try:
                cur = self._db().execute(
                    "DELETE FROM flagmw_rollout_log WHERE kind = ? AND at < ?", (kind, before)
                )
            except sqlite3.Error as exc:
                raise StoreUnavailableError(self.name, str(exc)) from None
            return cur.rowcount

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
