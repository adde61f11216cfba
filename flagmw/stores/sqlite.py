"""SQLiteStore: the embedded default store — one file, WAL, several processes at once.

The store is split by concept: this module holds :class:`SQLiteStore` (connections,
transactions and the :class:`~flagmw.stores.base.Store` operations);
:mod:`flagmw.stores._sqlite_schema` the tables, triggers and schema check;
:mod:`flagmw.stores._sqlite_changes` the memory-mapped change counter behind
:meth:`SQLiteStore.change_token`; :mod:`flagmw.stores._sqlite_rows` how rows map to
records.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from flagmw.core.overrides import Override
from flagmw.errors import NotFoundError, StoreUnavailableError
from flagmw.stores._sqlite_changes import SEQS, ChangeSignal
from flagmw.stores._sqlite_rows import (
    AUDIT_COLUMNS,
    INFO_COLUMNS,
    OV_COLUMNS,
    dumps,
    insert_audit,
    row_to_audit,
    row_to_info,
    row_to_override,
)
from flagmw.stores._sqlite_schema import SCHEMA_VERSION as SCHEMA_VERSION
from flagmw.stores._sqlite_schema import connect
from flagmw.stores._sqlite_snapshots import SQLiteSnapshots
from flagmw.stores.base import (
    AuditEntry,
    StoreState,
    override_audit_action,
    override_target,
)

__all__ = ["SQLiteStore"]


class SQLiteStore(ChangeSignal, SQLiteSnapshots):
    """A store in one SQLite file (WAL mode), shared by any number of processes.

    Args:
        path: the database file. ``FLAGMW_STORE`` names it for the command line.
        create: create the file (and its folder) when it does not exist. False (the
            default): a missing file raises :class:`~flagmw.errors.StoreUnavailableError`
            — nothing creates a store by accident (a moved or unmounted folder must not
            turn into a new, empty store that a kill is written to and lost with). Create
            a store once with ``flagmw init`` or ``create=True``.
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
        create: bool = False,
        timeout: float = 5.0,
        verify_interval: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        #: the store's clock (seconds since the epoch): the time of every audit entry
        self.clock = clock
        self.path = Path(path)
        self.name = f"sqlite:{self.path}"
        self.timeout = timeout
        self.verify_interval = verify_interval
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._conn_id: tuple[int, int] | None = None  # (st_dev, st_ino) of its file
        self._mm = None
        self._mm_ino = None
        self._next_verify = 0.0
        self._unpack = SEQS.unpack_from
        if not create and not self.path.is_file():
            raise StoreUnavailableError(
                self.name,
                "no such store file (create the store once with `flagmw init`, or check the "
                "path: a moved or unmounted folder is not replaced by an empty store)",
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailableError(self.name, str(exc)) from None
        self._connect(create=create)
        self._open_signal()
        ref = weakref.ref(self)

        def _child() -> None:
            store = ref()
            if store is not None:
                store._after_fork()

        os.register_at_fork(after_in_child=_child)

    # -- connections ---------------------------------------------------------------------

    def _file_id(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except (OSError, ValueError):
            return None
        return (st.st_dev, st.st_ino)

    def _connect(self, *, create: bool = False) -> sqlite3.Connection:
        """The connection, checked to still be on the file at :attr:`path` (one ``stat``):
        a store file that was moved away, deleted or replaced is noticed at the next read
        (at least every ``verify_interval``), not served on from an old handle. A missing
        file is never recreated here (only ``create=True`` at construction creates one)."""
        conn = self._conn
        file_id = self._file_id()
        if conn is not None:
            if file_id is not None and file_id == self._conn_id:
                return conn
            self._conn = None  # gone or replaced: drop the handle on the old file
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        if file_id is None and not create:
            raise StoreUnavailableError(
                self.name,
                "the store file is gone (moved, deleted, or its folder unmounted); it is "
                "not recreated: clients serve their last good config, marked stale, until "
                "it is back",
            )
        conn = connect(self.path, self.timeout, self.name)
        self._conn = conn
        self._conn_id = self._file_id()
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

    # -- state (change_token and the counter file: flagmw.stores._sqlite_changes) ------

    def read_state(self, now: float) -> StoreState:
        with self._read() as conn:
            seqs = self._db_seqs(conn)
            row = conn.execute(
                f"SELECT {INFO_COLUMNS} FROM snapshots ORDER BY rev DESC LIMIT 1"
            ).fetchone()
            rows = conn.execute(
                f"SELECT {OV_COLUMNS} FROM overrides WHERE ended_at IS NULL "
                "AND expires_at > ? ORDER BY seq DESC",
                (now,),
            ).fetchall()
        return StoreState(
            SEQS.pack(*seqs),
            row_to_info(row) if row else None,
            [row_to_override(r) for r in rows],
        )

    # -- overrides -----------------------------------------------------------------------

    def add_override(self, override: Override) -> Override:
        with self._write() as (conn, seqs):
            cur = conn.execute(
                "INSERT INTO overrides(key, value, kind, scope, target, reason, actor, created_at,"
                " expires_at, force, environment) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    override.key,
                    dumps(override.value),
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
            insert_audit(
                conn,
                self.clock(),
                override_audit_action(ov),
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
            insert_audit(
                conn,
                self.clock(),
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
            insert_audit(
                conn,
                self.clock(),
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
            f"SELECT {OV_COLUMNS} FROM overrides WHERE id=?", (override_id,)
        ).fetchone()
        if row is None:
            raise NotFoundError(
                f"no override {override_id!r} in {self.name} (see `flagmw overrides`)"
            )
        return row_to_override(row)

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
                f"SELECT {OV_COLUMNS} FROM overrides {where} ORDER BY created_at DESC, seq DESC",
                params,
            ).fetchall()
        return [row_to_override(r) for r in rows]

    # -- audit ---------------------------------------------------------------------------

    def audit(self, limit: int = 100, *, action: str | None = None) -> list[AuditEntry]:
        with self._read() as conn:
            if action is None:
                rows = conn.execute(
                    f"SELECT {AUDIT_COLUMNS} FROM audit ORDER BY seq DESC LIMIT ?",
                    (limit,),
                ).fetchall()
            else:
                rows = conn.execute(
                    f"SELECT {AUDIT_COLUMNS} FROM audit WHERE action=? OR action LIKE ? "
                    "ORDER BY seq DESC LIMIT ?",
                    (action, action + ".%", limit),
                ).fetchall()
        return [row_to_audit(r) for r in rows]

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


def open_url(spec: str, *, create: bool) -> SQLiteStore:
    """The opener of ``PATH``, ``sqlite:PATH`` and ``sqlite:///ABS/PATH`` (see
    :mod:`flagmw.stores.url`).

    Raises:
        ValueError: no path, or the path is a folder.
        StoreUnavailableError: the file is missing (and ``create`` is False) or unusable.
    """
    location = spec[7:] if spec[:7].lower() == "sqlite:" else spec
    if location.startswith("//"):  # sqlite:///abs/path, as in a URL
        location = location[2:]
    if not location:
        raise ValueError("a sqlite store needs a file path, e.g. sqlite:/srv/flagmw.db")
    path = Path(location).expanduser()
    if path.is_dir():
        raise ValueError(f"{location} is a folder; name the store file, e.g. {path}/flagmw.db")
    return SQLiteStore(path, create=create)
