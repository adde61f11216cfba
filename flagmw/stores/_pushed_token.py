"""The change token of a store with a server that pushes changes (PostgreSQL
LISTEN/NOTIFY, Redis pub/sub): one implementation of the part both share.

A background thread per store keeps a dedicated connection subscribed to the store's
change channel and folds every message into :attr:`PushedToken._seqs`, so
:meth:`PushedToken.change_token` is one attribute read and one clock read — no I/O at
the step boundary. The backend supplies the thread's body (:meth:`_listen_loop`: connect,
subscribe, resync, serve) and reports a lost connection through :meth:`_lost`.

Fail safe: when the listener's connection fails and is not back (and resynced) within
:data:`LOST_GRACE` seconds (or ``poll_interval`` when shorter), or when the thread has
shown no sign of a live connection for ``stale_after`` seconds (a silent network),
:meth:`change_token` raises :class:`~flagmw.errors.StoreUnavailableError`, so the client
reports the store unreachable (and stale) instead of trusting a token nobody updates.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from flagmw.errors import StoreUnavailableError

if TYPE_CHECKING:  # pragma: no cover
    from flagmw.stores.base import ChangeToken

__all__ = ["LOST_GRACE", "MAX_BACKOFF", "MAX_WAIT", "PushedToken"]

log = logging.getLogger("flagmw")
_monotonic = time.monotonic

#: the longest pause between two reconnect attempts (seconds)
MAX_BACKOFF = 2.0
#: the longest single wait for a message (seconds), so a stop is noticed soon
MAX_WAIT = 1.0
#: seconds a lost listener connection may take to come back before the store is
#: reported unavailable (or ``poll_interval`` when shorter)
LOST_GRACE = 0.5


class PushedToken:
    """The change-token half of a pushing store (a mixin). The store supplies ``name``,
    ``connect_timeout``, ``poll_interval``, ``stale_after``, :meth:`_channel_name` and
    :meth:`_listen_loop`, and calls :meth:`_init_listener` in its constructor."""

    if TYPE_CHECKING:
        name: str
        connect_timeout: float
        poll_interval: float
        stale_after: float

    _seqs: tuple[int, int]
    _last_ok: float
    _listener: threading.Thread | None
    _stop: threading.Event
    _ready: threading.Event
    _listen_error: str | None
    _listen_lock: threading.Lock
    _advance_lock: threading.Lock

    def _init_listener(self) -> None:
        self._advance_lock = threading.Lock()
        self._subscribers: list[Callable[[], Callable[[], object] | None]] = []
        self._notifying = False
        self._notify_again = False
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
        """Fold sequences learnt anywhere into the token (they only grow); when the
        listener thread learnt them, call the :meth:`on_change` subscribers there."""
        with self._advance_lock:  # the listener thread and writers both advance it
            old = self._seqs
            moved = seqs[0] > old[0] or seqs[1] > old[1]
            if moved:
                self._seqs = (max(seqs[0], old[0]), max(seqs[1], old[1]))
        if moved and threading.current_thread() is self._listener:
            self._notify()

    def on_change(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` in the listener thread whenever a message, a resync or a
        poll moves the token — a client reads the new state there, so its step
        boundaries (and an event loop running its runs) find it loaded. Held weakly when
        it is a bound method (a client that is gone is not kept alive); an exception is
        logged, never raised into the listener."""
        ref: Callable[[], Callable[[], object] | None]
        ref = weakref.WeakMethod(callback) if inspect.ismethod(callback) else (lambda: callback)
        with self._advance_lock:
            self._subscribers = [*self._subscribers, ref]

    def _notify(self) -> None:
        # a subscriber's read of the store advances the token again (in this thread):
        # then it runs once more after this round, never re-entered
        if self._notifying:
            self._notify_again = True
            return
        self._notifying = True
        try:
            again = True
            while again:
                self._notify_again = False
                for ref in self._subscribers:
                    callback = ref()
                    if callback is None:
                        continue
                    try:
                        callback()
                    except Exception:  # a subscriber's problem never stops the listener
                        log.exception("flagmw: change subscriber of %s failed", self.name)
                with self._advance_lock:  # forget subscribers that are gone
                    self._subscribers = [r for r in self._subscribers if r() is not None]
                again = self._notify_again
        finally:
            self._notifying = False

    # -- the listener thread -------------------------------------------------------------

    def _channel_name(self) -> str:
        """The change channel (names the thread)."""
        raise NotImplementedError

    def _listen_loop(self, stop: threading.Event, ready: threading.Event) -> None:
        """The thread's body: connect, subscribe, resync, serve; until ``stop``."""
        raise NotImplementedError

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
                name=f"flagmw-listen-{self._channel_name()}",
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
            thread.join(MAX_WAIT + 1.0)

    def _wake_listener(self) -> None:
        """Overridden by the store: send a message so a waiting listener wakes."""

    def _connected(self) -> None:
        """The listener (re)connected and resynced."""
        self._last_ok = _monotonic()
        if self._listen_error is not None:
            log.info("flagmw: change listener of %s reconnected and resynced", self.name)
        self._listen_error = None

    def _lost(self, exc: BaseException) -> None:
        """The listener's connection failed: stale within :data:`LOST_GRACE` unless it
        is back (and has resynced) by then, so a short blip is silent; logged once."""
        self._last_ok = min(
            self._last_ok,
            _monotonic() - self.stale_after + min(self.poll_interval, LOST_GRACE),
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
