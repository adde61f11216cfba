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
import threading
import time
from typing import TYPE_CHECKING, Any

import psycopg

from flagmw.stores._pushed_token import MAX_BACKOFF, MAX_WAIT, PushedToken

__all__ = ["ChangeListener", "payload"]

_monotonic = time.monotonic


def payload(seqs: tuple[int, int], **ids: Any) -> str:
    """The NOTIFY payload of a change: the new sequences and the id of what changed
    (``rev=4`` or ``ov="ov-3"``); short JSON, at most a few dozen bytes."""
    text = json.dumps({"seq": list(seqs), **ids}, separators=(",", ":"))
    assert len(text.encode()) < 8000  # PostgreSQL's payload limit
    return text


class ChangeListener(PushedToken):
    """The change-signal half of :class:`~flagmw.stores.postgres.PostgresStore` (a
    mixin over :class:`~flagmw.stores._pushed_token.PushedToken`): LISTEN/NOTIFY.

    The store supplies ``name``, ``schema``, ``channel``, ``listen_conninfo``,
    ``connect_timeout``, ``poll_interval``, ``stale_after`` and ``_changes_sql`` (the
    query of the two sequences).
    """

    if TYPE_CHECKING:
        schema: str
        channel: str
        listen_conninfo: str
        _changes_sql: str

    #: the backend pid of the listener's connection while it is connected, else None
    listener_pid: int | None

    def _init_listener(self) -> None:
        super()._init_listener()
        self.listener_pid = None

    def _channel_name(self) -> str:
        return self.channel

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
                    self._connected()
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
                self._lost(exc)
                stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    def _serve(self, conn: psycopg.Connection[Any], stop: threading.Event) -> None:
        next_poll = _monotonic() + self.poll_interval
        while not stop.is_set():
            # at most MAX_WAIT at a time, so a stop is noticed soon even when the wake-up
            # notification of close() cannot be sent
            wait = max(0.0, min(next_poll - _monotonic(), MAX_WAIT))
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
