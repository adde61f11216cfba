"""The PostgreSQL store's change signal: LISTEN/NOTIFY on a dedicated connection.

Every write bumps the store's change sequences (``snapshot_seq``, ``override_seq``, one
row in the ``changes`` table) and, in the same transaction, sends
``pg_notify('flagmw.<schema>', '{"seq":[S,O],"rev":R}')`` (or ``"ov":"ov-N"``): only
ids, far below PostgreSQL's 8,000-byte payload limit. PostgreSQL delivers it at COMMIT
to every connection listening on the channel, in commit order.

A background thread per store keeps one connection (not from the pool) in LISTEN and
folds every notification into :attr:`ChangeListener._seqs`, so
:meth:`ChangeListener.change_token` is one attribute read and one clock read — no I/O at
the step boundary. The thread also

* **resyncs** on every (re)connect: it LISTENs first, then reads the sequences, so a
  change committed while it was disconnected (whose notification is lost) is seen;
* **polls slowly**, reading the sequences every ``poll_interval`` seconds, as a safety
  net (a notification lost in a proxy, LISTEN through pgbouncer in transaction mode);
  each successful wait or poll also proves the connection alive;
* reconnects with a growing pause (0.05 s … 2 s) when the connection fails.

Fail safe: when the listener's connection fails and is not back (and resynced) within
0.5 s (or ``poll_interval`` when shorter), or when the thread has shown no sign of a
live connection for ``stale_after`` seconds (a silent network), :meth:`change_token`
raises :class:`~flagmw.errors.StoreUnavailableError`, so the client reports the store
unreachable (and stale) instead of silently trusting a token nobody updates.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import psycopg

from flagmw.errors import StoreUnavailableError
from flagmw.stores.base import ChangeToken

__all__ = ["ChangeListener", "payload"]

log = logging.getLogger("flagmw")
_monotonic = time.monotonic

#: the longest pause between two reconnect attempts (seconds)
_MAX_BACKOFF = 2.0
#: the longest single wait for notifications (seconds)
_MAX_WAIT = 1.0
#: seconds a lost listener connection may take to come back before the store is
#: reported unavailable (or ``poll_interval`` when shorter)
_LOST_GRACE = 0.5


def payload(seqs: tuple[int, int], **ids: Any) -> str:
    """The NOTIFY payload of a change: the new sequences and the id of what changed
    (``rev=4`` or ``ov="ov-3"``); short JSON, at most a few dozen bytes."""
    text = json.dumps({"seq": list(seqs), **ids}, separators=(",", ":"))
    assert len(text.encode()) < 8000  # PostgreSQL's payload limit
    return text


class ChangeListener:
    """The change-signal half of :class:`~flagmw.stores.postgres.PostgresStore` (a
    mixin): the listener thread and :meth:`change_token`.

    The store supplies ``name``, ``schema``, ``channel``, ``listen_conninfo``, ``connect_timeout``,
    ``poll_interval``, ``stale_after`` and ``_changes_sql`` (the query of the two
    sequences).
    """

    if TYPE_CHECKING:
        name: str
        schema: str
        channel: str
        listen_conninfo: str
        connect_timeout: float
        poll_interval: float
        stale_after: float
        _changes_sql: str

    _seqs: tuple[int, int]
    _last_ok: float
    _listener: threading.Thread | None
    _stop: threading.Event
    _ready: threading.Event
    _listen_error: str | None
    _listen_lock: threading.Lock
    #: the backend pid of the listener's connection while it is connected, else None
    listener_pid: int | None
    _advance_lock: threading.Lock

    def _init_listener(self) -> None:
        self.listener_pid = None
        self._advance_lock = threading.Lock()
        self._seqs = (-1, -1)  # before the first resync: no store returns this
        self._last_ok = float("-inf")
        self._listener = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._listen_error = None
        self._listen_lock = threading.Lock()

    # -- the hot path --------------------------------------------------------------------

    def change_token(self) -> ChangeToken:
        """``(snapshot_seq, override_seq)`` as last learnt from a notification, a
        resync, a poll or a write of this store — no I/O (≈0.1 µs).

        The first call starts the listener and waits up to ``connect_timeout`` seconds
        for its first resync.

        Raises:
            StoreUnavailableError: the listener has had no live connection for
                ``stale_after`` seconds (or could not start).
        """
        if _monotonic() - self._last_ok <= self.stale_after:
            return self._seqs
        return self._slow_token()

    def _slow_token(self) -> ChangeToken:
        started = self._start_listener()
        if started:
            self._ready.wait(self.connect_timeout)
        if _monotonic() - self._last_ok <= self.stale_after:
            return self._seqs
        raise StoreUnavailableError(
            self.name,
            f"no change notifications for over {self.stale_after:g} s "
            f"({self._listen_error or 'the listener is not connected'})",
        )

    def _advance(self, seqs: tuple[int, int]) -> None:
        """Fold sequences learnt anywhere into the token (they only grow)."""
        with self._advance_lock:  # the listener thread and writers both advance it
            old = self._seqs
            if seqs[0] > old[0] or seqs[1] > old[1]:
                self._seqs = (max(seqs[0], old[0]), max(seqs[1], old[1]))

    # -- the listener thread -------------------------------------------------------------

    def _start_listener(self) -> bool:
        """Start the thread unless it runs; True when this call started it."""
        with self._listen_lock:
            if self._listener is not None and self._listener.is_alive():
                return False
            self._stop = threading.Event()
            self._ready = threading.Event()
            thread = threading.Thread(
                target=self._listen_loop,
                args=(self._stop, self._ready),
                name=f"flagmw-listen-{self.channel}",
                daemon=True,
            )
            self._listener = thread
            thread.start()
            return True

    def _stop_listener(self) -> None:
        with self._listen_lock:
            thread, self._listener = self._listener, None
            self._stop.set()
        self._last_ok = float("-inf")
        if thread is not None and thread is not threading.current_thread():
            self._wake_listener()
            thread.join(_MAX_WAIT + 1.0)

    def _wake_listener(self) -> None:
        """Overridden by the store: send a notification so a waiting listener wakes."""

    def _listen_loop(self, stop: threading.Event, ready: threading.Event) -> None:
        backoff = 0.05
        while not stop.is_set():
            try:
                with psycopg.connect(
                    self.listen_conninfo,
                    autocommit=True,
                    connect_timeout=max(1, round(self.connect_timeout)),
                    application_name=f"flagmw-listen:{self.schema}",
                    # a dead peer (no RST) is noticed in seconds, not hours
                    keepalives=1,
                    keepalives_idle=5,
                    keepalives_interval=1,
                    keepalives_count=3,
                ) as conn:
                    conn.execute(f'LISTEN "{self.channel}"')
                    self._resync(conn)  # after LISTEN: nothing committed later is missed
                    if self._listen_error is not None:
                        log.info(
                            "flagmw: change listener of %s reconnected and resynced", self.name
                        )
                    self._listen_error = None
                    self.listener_pid = conn.info.backend_pid
                    ready.set()
                    backoff = 0.05
                    try:
                        self._serve(conn, stop)
                    finally:
                        self.listener_pid = None
            except psycopg.Error as exc:
                self.listener_pid = None
                if stop.is_set():
                    break
                # a lost connection is known now: stale within _LOST_GRACE unless the
                # listener is back (and has resynced) by then, so a short blip is silent
                self._last_ok = min(
                    self._last_ok,
                    _monotonic() - self.stale_after + min(self.poll_interval, _LOST_GRACE),
                )
                first = self._listen_error is None
                self._listen_error = str(exc).strip().splitlines()[0] if str(exc) else repr(exc)
                if first:
                    log.warning(
                        "flagmw: change listener of %s lost its connection (%s); reconnecting",
                        self.name,
                        self._listen_error,
                    )
                stop.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)

    def _serve(self, conn: psycopg.Connection[Any], stop: threading.Event) -> None:
        next_poll = _monotonic() + self.poll_interval
        while not stop.is_set():
            # at most _MAX_WAIT at a time, so a stop is noticed soon even when the wake-up
            # notification of close() cannot be sent
            wait = max(0.0, min(next_poll - _monotonic(), _MAX_WAIT))
            for note in conn.notifies(timeout=wait):
                if stop.is_set():
                    return
                self._on_notify(note.payload)
            if _monotonic() >= next_poll:
                self._resync(conn)  # the slow poll (and a liveness check)
                next_poll = _monotonic() + self.poll_interval

    def _on_notify(self, text: str) -> None:
        try:
            seq = json.loads(text)["seq"]
            seqs = (int(seq[0]), int(seq[1]))
        except (ValueError, KeyError, TypeError, IndexError):
            return  # a wake-up or a foreign payload on our channel: only proves liveness
        finally:
            self._last_ok = _monotonic()
        self._advance(seqs)

    def _resync(self, conn: psycopg.Connection[Any]) -> None:
        row = conn.execute(self._changes_sql).fetchone()
        if row is None:  # pragma: no cover - the migration inserts the row
            raise psycopg.DataError("the changes row is missing")
        self._advance((int(row[0]), int(row[1])))
        self._last_ok = _monotonic()
