"""The Redis store's change signal: pub/sub on a dedicated connection.

Every write bumps the store's change sequences (the ``seq`` hash) and, in the same
MULTI/EXEC transaction, PUBLISHes ``{"seq":[S,O],"rev":R}`` (or ``"ov":"ov-N"``) on the
store's channel (``<prefix>changes``): only ids. Redis delivers it to every subscriber
when the transaction executes, in order.

A background thread per store keeps one connection of its own (not from the pool)
SUBSCRIBEd to the channel and folds every message into :attr:`ChangeListener._seqs`, so
:meth:`ChangeListener.change_token` is one attribute read and one clock read — no I/O at
the step boundary. The thread also

* **resyncs** on every (re)connect: it SUBSCRIBEs first, then reads the sequences, so a
  change made while it was disconnected (whose message Redis dropped: pub/sub keeps
  nothing for absent subscribers) is seen;
* **polls slowly**: every ``poll_interval`` seconds it reads the sequences again and
  PINGs the subscribed connection (a dead connection fails the PING), as a safety net;
* reconnects with a growing pause (0.05 s … 2 s) when the connection fails.

Fail safe: when the listener's connection fails and is not back (and resynced) within
0.5 s (or ``poll_interval`` when shorter), or when the thread has shown no sign of a
live connection for ``stale_after`` seconds, :meth:`change_token` raises
:class:`~flagmw.errors.StoreUnavailableError`, so the client reports the store
unreachable (and stale) instead of trusting a token nobody updates.

The design and its figures: docs/stores-redis.md.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, cast

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from flagmw.errors import StoreUnavailableError
from flagmw.stores.base import ChangeToken

if TYPE_CHECKING:  # pragma: no cover
    from redis.connection import AbstractConnection

__all__ = ["ChangeListener"]

log = logging.getLogger("flagmw")
_monotonic = time.monotonic

#: the longest pause between two reconnect attempts (seconds)
_MAX_BACKOFF = 2.0
#: the longest single wait for a message (seconds)
_MAX_WAIT = 1.0
#: seconds a lost listener connection may take to come back before the store is
#: reported unavailable (or ``poll_interval`` when shorter)
_LOST_GRACE = 0.5


class ChangeListener:
    """The change-signal half of :class:`~flagmw.stores.redis.RedisStore` (a mixin):
    the listener thread and :meth:`change_token`.

    The store supplies ``name``, ``listen_url``, ``connect_timeout``, ``poll_interval``,
    ``stale_after``, ``_keys`` and ``_read_seqs()`` (the two sequences, read through the
    store's pool).
    """

    if TYPE_CHECKING:
        from flagmw.stores._redis_keys import Keys

        name: str
        listen_url: str
        connect_timeout: float
        poll_interval: float
        stale_after: float
        _keys: Keys

        def _read_seqs(self) -> tuple[int, int]: ...

    _seqs: tuple[int, int]
    _last_ok: float
    _listener: threading.Thread | None
    _stop: threading.Event
    _ready: threading.Event
    _listen_error: str | None
    _listen_lock: threading.Lock
    _advance_lock: threading.Lock
    #: the Redis client id (``CLIENT ID``) of the listener's connection while it is
    #: subscribed, else None
    listener_client_id: int | None

    def _init_listener(self) -> None:
        self.listener_client_id = None
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
        """``(snapshot_seq, override_seq)`` as last learnt from a message, a resync, a
        poll or a write of this store — no I/O (≈0.1 µs).

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
        if self._start_listener():
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
                name=f"flagmw-listen-{self._keys.channel}",
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
        """Overridden by the store: send a message so a waiting listener wakes."""

    def _connect_listener(self) -> AbstractConnection:
        pool = redis.ConnectionPool.from_url(
            self.listen_url,
            socket_connect_timeout=self.connect_timeout,
            socket_timeout=self.connect_timeout,
            socket_keepalive=True,  # a dead peer (no RST) is noticed, not waited on
            retry=Retry(NoBackoff(), 0),  # a reconnect is ours to make (and resync)
            health_check_interval=0,
            client_name="flagmw-listen",
            protocol=2,  # RESP2: messages are plain replies, read in _serve
        )
        conn = cast("AbstractConnection", pool.make_connection())
        conn.connect()  # type: ignore[no-untyped-call]
        return conn

    def _listen_loop(self, stop: threading.Event, ready: threading.Event) -> None:
        backoff = 0.05
        while not stop.is_set():
            conn: AbstractConnection | None = None
            try:
                conn = self._connect_listener()
                conn.send_command("CLIENT", "ID")  # type: ignore[no-untyped-call]
                client_id = int(conn.read_response())
                conn.send_command("SUBSCRIBE", self._keys.channel)  # type: ignore[no-untyped-call]
                conn.read_response()  # the confirmation: subscribed from here on
                self._advance(self._read_seqs())  # after SUBSCRIBE: nothing later is missed
                self._last_ok = _monotonic()
                if self._listen_error is not None:
                    log.info("flagmw: change listener of %s reconnected and resynced", self.name)
                self._listen_error = None
                self.listener_client_id = client_id
                ready.set()
                backoff = 0.05
                try:
                    self._serve(conn, stop)
                finally:
                    self.listener_client_id = None
            except (redis.RedisError, OSError, ValueError, StoreUnavailableError) as exc:
                self.listener_client_id = None
                if stop.is_set():
                    break
                # a lost connection is known now: stale within _LOST_GRACE unless the
                # listener is back (and has resynced) by then, so a short blip is silent
                self._last_ok = min(
                    self._last_ok,
                    _monotonic() - self.stale_after + min(self.poll_interval, _LOST_GRACE),
                )
                first = self._listen_error is None
                text = str(exc).strip()
                self._listen_error = text.splitlines()[0] if text else type(exc).__name__
                if first:
                    log.warning(
                        "flagmw: change listener of %s lost its connection (%s); reconnecting",
                        self.name,
                        self._listen_error,
                    )
                stop.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
            finally:
                if conn is not None:
                    conn.disconnect()  # type: ignore[no-untyped-call]

    def _serve(self, conn: AbstractConnection, stop: threading.Event) -> None:
        next_poll = _monotonic() + self.poll_interval
        pinged = False
        while not stop.is_set():
            # at most _MAX_WAIT at a time, so a stop is noticed soon
            wait = max(0.0, min(next_poll - _monotonic(), _MAX_WAIT))
            if conn.can_read(timeout=wait):
                msg = conn.read_response()
                self._on_message(msg)
                if isinstance(msg, list) and msg and msg[0] in (b"pong", "pong"):
                    pinged = False
                continue
            if _monotonic() >= next_poll:
                if pinged:  # the last poll's PING had a whole interval to come back
                    raise redis.ConnectionError("the subscribed connection does not answer")
                conn.send_command("PING")  # type: ignore[no-untyped-call]  # a dead connection fails here or next poll
                pinged = True
                self._advance(self._read_seqs())  # the slow poll
                self._last_ok = _monotonic()
                next_poll = _monotonic() + self.poll_interval

    def _on_message(self, msg: Any) -> None:
        self._last_ok = _monotonic()  # any reply proves the connection alive
        try:
            kind = msg[0].decode() if isinstance(msg[0], bytes) else msg[0]
            if kind != "message":
                return
            seq = json.loads(msg[2])["seq"]
            seqs = (int(seq[0]), int(seq[1]))
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            return  # a foreign message on our channel: only proves liveness
        self._advance(seqs)
