"""SQLiteStore: the embedded default store — one file, WAL, several processes at once.

Layout of ``flagmw.db``:

* ``meta`` — schema version and the two change sequences (``snapshot_seq``,
  ``override_seq``), bumped in the same transaction as every change;
* ``snapshots`` — one row per rev, immutable (triggers refuse UPDATE and DELETE);
* ``registries`` — the registries snapshots were validated against, by fingerprint;
* ``overrides`` — the emergency layer;
* ``audit`` — the append-only log (triggers refuse UPDATE and DELETE).

**Change detection.** ``PRAGMA data_version`` costs about 4 µs from Python, too much for
every step boundary of every run. Next to the database the store keeps
``flagmw.db-changes``: 16 bytes holding the two sequences, memory-mapped by every
process. Writers update it while they hold SQLite's write lock, just before COMMIT,
so its value only grows; :meth:`SQLiteStore.change_token` is one read of shared
memory (≈0.1 µs). Readers treat it as a hint and take the authoritative sequences
from :meth:`SQLiteStore.read_state`, which reads them in the same transaction as the
data, so a value written just before a COMMIT is never mistaken for the change
itself. Every ``verify_interval`` seconds ``change_token`` also reads the sequences
from the database, which repairs the file if it was deleted or a writer died
between COMMIT and the update.
"""

from __future__ import annotations

import json
import mmap
import os
import sqlite3
import struct
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flagmw.core.overrides import Override, OverrideKind, ScopeKind
from flagmw.errors import ConflictError, NotFoundError, StoreUnavailableError
from flagmw.stores.base import (
    AuditEntry,
    ChangeToken,
    SnapshotInfo,
    SnapshotRecord,
    StoreState,
    override_target,
)

__all__ = ["SQLiteStore"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', 1), ('snapshot_seq', 0),
    ('override_seq', 0);
CREATE TABLE IF NOT EXISTS registries (
    fingerprint TEXT PRIMARY KEY,
    document TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    rev INTEGER PRIMARY KEY,
    parent_rev INTEGER,
    content_hash TEXT NOT NULL,
    author TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at REAL NOT NULL,
    registry_fingerprint TEXT NOT NULL REFERENCES registries(fingerprint),
    action TEXT NOT NULL,
    rollback_of INTEGER,
    document TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS snapshots_immutable_update BEFORE UPDATE ON snapshots
BEGIN SELECT RAISE(ABORT, 'flagmw snapshots are immutable'); END;
CREATE TRIGGER IF NOT EXISTS snapshots_immutable_delete BEFORE DELETE ON snapshots
BEGIN SELECT RAISE(ABORT, 'flagmw snapshots are immutable'); END;
CREATE TABLE IF NOT EXISTS overrides (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    kind TEXT NOT NULL,
    scope TEXT NOT NULL,
    target TEXT,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    force INTEGER NOT NULL DEFAULT 0,
    environment TEXT,
    ended_at REAL,
    ended_by TEXT,
    end_reason TEXT
);
CREATE INDEX IF NOT EXISTS overrides_live ON overrides(ended_at, expires_at);
CREATE INDEX IF NOT EXISTS overrides_key ON overrides(key);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    target TEXT NOT NULL,
    before TEXT,
    after TEXT,
    details TEXT NOT NULL DEFAULT '{}'
);
CREATE TRIGGER IF NOT EXISTS audit_append_only_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the flagmw audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_append_only_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the flagmw audit log is append-only'); END;
"""

_SEQS = struct.Struct("<QQ")
_monotonic = time.monotonic
_OV_COLUMNS = (
    "id, key, value, kind, scope, target, reason, actor, created_at, expires_at, "
    "force, environment, ended_at, ended_by, end_reason"
)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _row_to_override(row: tuple[Any, ...]) -> Override:
    return Override(
        id=row[0],
        key=row[1],
        value=json.loads(row[2]),
        kind=OverrideKind(row[3]),
        scope=ScopeKind(row[4]),
        target=row[5],
        reason=row[6],
        actor=row[7],
        created_at=row[8],
        expires_at=row[9],
        force=bool(row[10]),
        environment=row[11],
        ended_at=row[12],
        ended_by=row[13],
        end_reason=row[14],
    )


def _row_to_info(row: tuple[Any, ...]) -> SnapshotInfo:
    return SnapshotInfo(
        rev=row[0],
        parent_rev=row[1],
        content_hash=row[2],
        author=row[3],
        message=row[4],
        created_at=row[5],
        registry_fingerprint=row[6],
        action=row[7],
        rollback_of=row[8],
    )


_INFO_COLUMNS = (
    "rev, parent_rev, content_hash, author, message, created_at, "
    "registry_fingerprint, action, rollback_of"
)


class SQLiteStore:
    """A store in one SQLite file (WAL mode), shared by any number of processes.

    Args:
        path: the database file (created if missing, with its folder). ``FLAGMW_STORE``
            names it for the command line.
        create: create the file (and its folder) when it does not exist; with False a
            missing file raises :class:`~flagmw.errors.StoreUnavailableError` instead
            (read-only tools should not create an empty store on a typo).
        timeout: seconds to wait for another process's write lock before failing.
        verify_interval: seconds between authoritative checks of the change sequences
            in :meth:`change_token` (the memory-mapped counter is read in between).

    Raises:
        StoreUnavailableError: the file cannot be created, opened or is not a flagmw
            store.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = "flagmw.db",
        *,
        create: bool = True,
        timeout: float = 5.0,
        verify_interval: float = 1.0,
    ) -> None:
        self.path = Path(path)
        self.name = f"sqlite:{self.path}"
        self.timeout = timeout
        self.verify_interval = verify_interval
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._mm: mmap.mmap | None = None
        self._mm_ino: int | None = None
        self._next_verify = 0.0
        self._unpack: Callable[[mmap.mmap, int], tuple[int, int]] = _SEQS.unpack_from
        if not create and not self.path.is_file():
            raise StoreUnavailableError(
                self.name, "no such store file (publish a snapshot first, or check the path)"
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailableError(self.name, str(exc)) from None
        self._connect()
        self._open_signal()
        ref = weakref.ref(self)

        def _child() -> None:
            store = ref()
            if store is not None:
                store._after_fork()

        os.register_at_fork(after_in_child=_child)

    # -- connections ---------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = self._conn
        if conn is not None:
            return conn
        try:
            conn = sqlite3.connect(
                str(self.path), timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _split_sql(_SCHEMA):
                    conn.execute(statement)
                version = conn.execute(
                    "SELECT value FROM meta WHERE key='schema_version'"
                ).fetchone()[0]
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError as exc:
            raise StoreUnavailableError(self.name, f"{exc} (is it a flagmw store?)") from None
        if version != SCHEMA_VERSION:
            conn.close()
            raise StoreUnavailableError(
                self.name, f"schema version {version}; this flagmw reads version {SCHEMA_VERSION}"
            )
        self._conn = conn
        return conn

    def _after_fork(self) -> None:
        # A SQLite connection must not cross fork(): abandon the parent's (do not close
        # it, that would touch the parent's locks) and reopen lazily in the child.
        self._conn = None
        self._lock = threading.RLock()

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                conn = self._connect()
                conn.execute("BEGIN")
                try:
                    yield conn
                finally:
                    conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreUnavailableError(self.name, str(exc)) from None

    @contextmanager
    def _write(self) -> Iterator[tuple[sqlite3.Connection, list[int]]]:
        """A write transaction; yields the connection and the sequences to bump
        (``[snapshot_seq, override_seq]``), which are stored and signalled on success."""
        with self._lock:
            try:
                conn = self._connect()
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreUnavailableError(self.name, str(exc)) from None
            before = self._db_seqs(conn)
            seqs = list(before)
            try:
                yield conn, seqs
                if seqs != list(before):
                    conn.execute("UPDATE meta SET value=? WHERE key='snapshot_seq'", (seqs[0],))
                    conn.execute("UPDATE meta SET value=? WHERE key='override_seq'", (seqs[1],))
                    self._signal(seqs[0], seqs[1])  # under the write lock, before COMMIT
                conn.execute("COMMIT")
            except BaseException as exc:
                try:
                    self._signal(*before)
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                if isinstance(exc, sqlite3.Error):
                    raise StoreUnavailableError(self.name, str(exc)) from None
                raise

    @staticmethod
    def _db_seqs(conn: sqlite3.Connection) -> tuple[int, int]:
        rows = dict(
            conn.execute(
                "SELECT key, value FROM meta WHERE key IN ('snapshot_seq', 'override_seq')"
            )
        )
        return (rows["snapshot_seq"], rows["override_seq"])

    # -- change signal -------------------------------------------------------------------

    @property
    def signal_path(self) -> Path:
        """The memory-mapped change counter next to the database."""
        return self.path.with_name(self.path.name + "-changes")

    def _open_signal(self) -> None:
        if self._mm is not None:
            self._mm.close()
            self._mm = None
        try:
            fd = os.open(self.signal_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            # e.g. a read-only folder: fall back to reading the sequences from the
            # database at every check (correct, only slower)
            self._mm_ino = None
            return
        try:
            st = os.fstat(fd)
            if st.st_size < _SEQS.size:
                os.ftruncate(fd, _SEQS.size)
            self._mm = mmap.mmap(fd, _SEQS.size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            self._mm_ino = st.st_ino
        finally:
            os.close(fd)
        with self._lock:
            seqs = self._db_seqs(self._connect())
        if _behind(self._unpack(self._mm, 0), seqs):
            self._repair()

    def _signal(self, snapshot_seq: int, override_seq: int) -> None:
        mm = self._mm
        if mm is not None:
            _SEQS.pack_into(mm, 0, snapshot_seq, override_seq)

    def _repair(self) -> None:
        """Bring the counter file up to the database's sequences, under the write lock
        (so it cannot undo a concurrent writer's update)."""
        with self._write() as (conn, _):
            self._signal(*self._db_seqs(conn))

    def change_token(self) -> ChangeToken:
        """The two change sequences as 16 bytes, read from the memory-mapped counter
        (≈0.1 µs); every ``verify_interval`` seconds read from the database instead."""
        if _monotonic() < self._next_verify:
            return self._mm[:]  # type: ignore[index]  # _next_verify stays 0 without a map
        return self._verify()

    def _verify(self) -> ChangeToken:
        self._next_verify = time.monotonic() + self.verify_interval
        try:
            ino: int | None = os.stat(self.signal_path).st_ino
        except OSError:
            ino = None
        if ino is None or ino != self._mm_ino:
            self._open_signal()  # deleted or replaced: map the current file
        with self._read() as conn:
            seqs = self._db_seqs(conn)
        if self._mm is not None and _behind(self._unpack(self._mm, 0), seqs):
            self._repair()
        if self._mm is None:
            self._next_verify = 0.0  # no shared counter: read the database every time
        return _SEQS.pack(*seqs)

    def read_state(self, now: float) -> StoreState:
        with self._read() as conn:
            seqs = self._db_seqs(conn)
            row = conn.execute(
                f"SELECT {_INFO_COLUMNS} FROM snapshots ORDER BY rev DESC LIMIT 1"
            ).fetchone()
            rows = conn.execute(
                f"SELECT {_OV_COLUMNS} FROM overrides WHERE ended_at IS NULL "
                "AND expires_at > ? ORDER BY seq DESC",
                (now,),
            ).fetchall()
        return StoreState(
            _SEQS.pack(*seqs),
            _row_to_info(row) if row else None,
            [_row_to_override(r) for r in rows],
        )

    # -- snapshots -----------------------------------------------------------------------

    def head(self) -> SnapshotInfo | None:
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {_INFO_COLUMNS} FROM snapshots ORDER BY rev DESC LIMIT 1"
            ).fetchone()
        return _row_to_info(row) if row else None

    def get_snapshot(self, rev: int | None = None) -> SnapshotRecord:
        with self._read() as conn:
            if rev is None:
                row = conn.execute(
                    f"SELECT {_INFO_COLUMNS}, document FROM snapshots ORDER BY rev DESC LIMIT 1"
                ).fetchone()
            else:
                row = conn.execute(
                    f"SELECT {_INFO_COLUMNS}, document FROM snapshots WHERE rev=?", (rev,)
                ).fetchone()
            if row is None:
                head = conn.execute("SELECT MAX(rev) FROM snapshots").fetchone()[0]
                if head is None:
                    raise NotFoundError(f"nothing has been published to {self.name} yet")
                raise NotFoundError(
                    f"no snapshot rev {rev} in {self.name} (the head is rev {head})"
                )
            reg = conn.execute(
                "SELECT document FROM registries WHERE fingerprint=?", (row[6],)
            ).fetchone()
        return SnapshotRecord(_row_to_info(row), json.loads(row[9]), json.loads(reg[0]))

    def history(self, limit: int = 50) -> list[SnapshotInfo]:
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_INFO_COLUMNS} FROM snapshots ORDER BY rev DESC LIMIT ?", (limit,)
            ).fetchall()
        return [_row_to_info(r) for r in rows]

    def publish(
        self,
        document: Mapping[str, Any],
        registry: Mapping[str, Any],
        *,
        content_hash: str,
        registry_fingerprint: str,
        parent_rev: int | None,
        author: str,
        message: str,
        at: float,
        action: str = "publish",
        rollback_of: int | None = None,
    ) -> SnapshotInfo:
        doc_text = _dumps(document)
        reg_text = _dumps(registry)
        with self._write() as (conn, seqs):
            head = conn.execute("SELECT MAX(rev) FROM snapshots").fetchone()[0]
            if parent_rev != head:
                raise ConflictError(parent_rev, head)
            rev = (head or 0) + 1
            conn.execute(
                "INSERT OR IGNORE INTO registries(fingerprint, document) VALUES (?, ?)",
                (registry_fingerprint, reg_text),
            )
            conn.execute(
                "INSERT INTO snapshots(rev, parent_rev, content_hash, author, message, created_at,"
                " registry_fingerprint, action, rollback_of, document) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    rev,
                    head,
                    content_hash,
                    author,
                    message,
                    at,
                    registry_fingerprint,
                    action,
                    rollback_of,
                    doc_text,
                ),
            )
            self._audit(
                conn,
                at,
                action,
                author,
                message,
                f"rev {rev}",
                head,
                rev,
                {"content_hash": content_hash, "rollback_of": rollback_of},
            )
            seqs[0] += 1
        return SnapshotInfo(
            rev, head, content_hash, author, message, at, registry_fingerprint, action, rollback_of
        )

    # -- overrides -----------------------------------------------------------------------

    def add_override(self, override: Override, *, audit_action: str) -> Override:
        with self._write() as (conn, seqs):
            cur = conn.execute(
                "INSERT INTO overrides(key, value, kind, scope, target, reason, actor, created_at,"
                " expires_at, force, environment) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    override.key,
                    _dumps(override.value),
                    override.kind.value,
                    override.scope.value,
                    override.target,
                    override.reason,
                    override.actor,
                    override.created_at,
                    override.expires_at,
                    int(override.force),
                    override.environment,
                ),
            )
            ov = override.with_changes(id=f"ov-{cur.lastrowid}")
            conn.execute("UPDATE overrides SET id=? WHERE seq=?", (ov.id, cur.lastrowid))
            self._audit(
                conn,
                ov.created_at,
                audit_action,
                ov.actor,
                ov.reason,
                override_target(ov),
                None,
                ov.value,
                {"expires_at": ov.expires_at, "force": ov.force, "environment": ov.environment},
            )
            seqs[1] += 1
        return ov

    def renew_override(
        self, override_id: str, expires_at: float, *, actor: str, reason: str, at: float
    ) -> Override:
        with self._write() as (conn, seqs):
            old = self._get_override(conn, override_id)
            conn.execute("UPDATE overrides SET expires_at=? WHERE id=?", (expires_at, override_id))
            new = old.with_changes(expires_at=expires_at)
            self._audit(
                conn,
                at,
                f"{old.kind.value}.renew",
                actor,
                reason,
                override_target(new),
                {"expires_at": old.expires_at},
                {"expires_at": expires_at},
                {},
            )
            seqs[1] += 1
        return new

    def end_override(self, override_id: str, *, actor: str, reason: str, at: float) -> Override:
        with self._write() as (conn, seqs):
            old = self._get_override(conn, override_id)
            conn.execute(
                "UPDATE overrides SET ended_at=?, ended_by=?, end_reason=? WHERE id=?",
                (at, actor, reason, override_id),
            )
            new = old.with_changes(ended_at=at, ended_by=actor, end_reason=reason)
            self._audit(
                conn,
                at,
                f"{old.kind.value}.end",
                actor,
                reason,
                override_target(new),
                old.value,
                None,
                {},
            )
            seqs[1] += 1
        return new

    def get_override(self, override_id: str) -> Override:
        with self._read() as conn:
            return self._get_override(conn, override_id)

    def _get_override(self, conn: sqlite3.Connection, override_id: str) -> Override:
        row = conn.execute(
            f"SELECT {_OV_COLUMNS} FROM overrides WHERE id=?", (override_id,)
        ).fetchone()
        if row is None:
            raise NotFoundError(
                f"no override {override_id!r} in {self.name} (see `flagmw overrides`)"
            )
        return _row_to_override(row)

    def list_overrides(
        self, *, include_ended: bool = False, key: str | None = None
    ) -> list[Override]:
        clauses, params = [], []
        if not include_ended:
            clauses.append("ended_at IS NULL")
        if key is not None:
            clauses.append("key = ?")
            params.append(key)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_OV_COLUMNS} FROM overrides {where} ORDER BY created_at DESC, seq DESC",
                params,
            ).fetchall()
        return [_row_to_override(r) for r in rows]

    # -- audit ---------------------------------------------------------------------------

    @staticmethod
    def _audit(
        conn: sqlite3.Connection,
        at: float,
        action: str,
        actor: str,
        reason: str,
        target: str,
        before: Any,
        after: Any,
        details: Mapping[str, Any],
    ) -> None:
        conn.execute(
            "INSERT INTO audit(at, action, actor, reason, target, before, after, details) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (at, action, actor, reason, target, _dumps(before), _dumps(after), _dumps(details)),
        )

    def audit(self, limit: int = 100, *, action: str | None = None) -> list[AuditEntry]:
        with self._read() as conn:
            if action is None:
                rows = conn.execute(
                    "SELECT seq, at, action, actor, reason, target, before, "
                    "after, details FROM audit ORDER BY seq DESC LIMIT ?",
                    (limit,),
                ).fetchall()
            else:
                rows = conn.execute(
                    "SELECT seq, at, action, actor, reason, target, before, "
                    "after, details FROM audit WHERE action=? OR action LIKE ? "
                    "ORDER BY seq DESC LIMIT ?",
                    (action, action + ".%", limit),
                ).fetchall()
        return [
            AuditEntry(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                json.loads(r[6]),
                json.loads(r[7]),
                json.loads(r[8]),
            )
            for r in rows
        ]

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self._mm is not None:
                self._mm.close()
                self._mm = None
            # a later call reconnects and maps the counter again (change_token goes to
            # _verify, which reopens the map)
            self._mm_ino = None
            self._next_verify = 0.0

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"


def _behind(signal: tuple[int, int], seqs: tuple[int, int]) -> bool:
    return signal[0] < seqs[0] or signal[1] < seqs[1]


def _split_sql(script: str) -> list[str]:
    """Split the schema script into statements (triggers contain inner semicolons)."""
    out, buf, in_trigger = [], [], False
    for line in script.strip().splitlines():
        buf.append(line)
        stripped = line.strip().upper()
        if stripped.startswith("CREATE TRIGGER"):
            in_trigger = True
        if in_trigger:
            if stripped.endswith("END;"):
                out.append("\n".join(buf))
                buf, in_trigger = [], False
        elif stripped.endswith(";"):
            out.append("\n".join(buf))
            buf = []
    if buf and "".join(buf).strip():
        out.append("\n".join(buf))
    return out
