"""The SQLite store's change signal: a memory-mapped counter read at every step boundary.

``PRAGMA data_version`` costs about 4 µs from Python, too much for every step boundary
of every run. Next to the database the store keeps ``flagmw.db-changes``: 16 bytes
holding the two change sequences (``snapshot_seq``, ``override_seq``, little-endian
unsigned 64-bit), memory-mapped by every process. Writers update it while they hold
SQLite's write lock, just before COMMIT, so its value only grows;
:meth:`ChangeSignal.change_token` is one read of shared memory (≈0.1 µs). Readers treat
it as a hint and take the authoritative sequences from ``read_state``, which reads them
in the same transaction as the data, so a value written just before a COMMIT is never
mistaken for the change itself. Every ``verify_interval`` seconds ``change_token`` also
reads the sequences from the database, which repairs the file if it was deleted or a
writer died between COMMIT and the update.
"""

from __future__ import annotations

import mmap
import os
import sqlite3
import struct
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from flagmw.stores.base import ChangeToken

__all__ = ["SEQS", "ChangeSignal"]

#: the counter file's layout, and the change token's: ``(snapshot_seq, override_seq)``
SEQS = struct.Struct("<QQ")
_monotonic = time.monotonic


class ChangeSignal:
    """The change-signal half of :class:`~flagmw.stores.sqlite.SQLiteStore` (a mixin).

    It keeps ``_mm`` (the mapped counter, or None where the folder is read-only),
    ``_mm_ino`` (the inode mapped, to notice a deleted or replaced file) and
    ``_next_verify`` (the monotonic time of the next check against the database); the
    store supplies its path, lock and transactions.
    """

    _mm: mmap.mmap | None
    _mm_ino: int | None
    _next_verify: float
    _unpack: Callable[[mmap.mmap, int], tuple[int, int]]

    if TYPE_CHECKING:
        path: Path
        verify_interval: float
        _lock: threading.RLock

        def _connect(self) -> sqlite3.Connection: ...

        def _read(self) -> AbstractContextManager[sqlite3.Connection]: ...

        def _write(self) -> AbstractContextManager[tuple[sqlite3.Connection, list[int]]]: ...

    @staticmethod
    def _db_seqs(conn: sqlite3.Connection) -> tuple[int, int]:
        rows = dict(
            conn.execute(
                "SELECT key, value FROM meta WHERE key IN ('snapshot_seq', 'override_seq')"
            )
        )
        return (rows["snapshot_seq"], rows["override_seq"])

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
            if st.st_size < SEQS.size:
                os.ftruncate(fd, SEQS.size)
            self._mm = mmap.mmap(fd, SEQS.size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
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
            SEQS.pack_into(mm, 0, snapshot_seq, override_seq)

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
        try:
            ino: int | None = os.stat(self.signal_path).st_ino
        except OSError:
            ino = None
        try:
            if ino is None or ino != self._mm_ino:
                self._open_signal()  # deleted or replaced: map the current file
            with self._read() as conn:
                seqs = self._db_seqs(conn)
        except BaseException:
            self._next_verify = 0.0  # unverified: the next call verifies again
            raise
        self._next_verify = time.monotonic() + self.verify_interval
        if self._mm is not None and _behind(self._unpack(self._mm, 0), seqs):
            self._repair()
        if self._mm is None:
            self._next_verify = 0.0  # no shared counter: read the database every time
        return SEQS.pack(*seqs)


def _behind(signal: tuple[int, int], seqs: tuple[int, int]) -> bool:
    return signal[0] < seqs[0] or signal[1] < seqs[1]
