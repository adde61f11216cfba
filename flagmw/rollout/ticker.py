"""The rollout controller on a timer: what ``flagmw serve --rollout-tick SECONDS`` (or a
worker of your own) runs so that rollouts advance and roll back without a cron job.

A :class:`RolloutTicker` calls :meth:`RolloutController.tick` every ``interval`` seconds
on a daemon thread. Every action other than ``wait`` (``advance``, ``complete``,
``rollback``, ``pause``, ``conflict``) is handed to ``on_action`` — the console turns it
into a webhook and a live event. Several tickers on the same store (console replicas,
a cron job besides) are safe: every transition is a compare-and-set on the stored
rollout, so only one of them acts on a given state.

A tick that fails (the store is unreachable, a rollout document is unreadable) is logged
and counted (:attr:`RolloutTicker.errors`), never raised into the thread: the next tick
tries again. A rollback that did not commit is therefore never reported — the
controller only returns ``rollback`` after its compare-and-set succeeded.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from flagmw.rollout.controller import RolloutController, TickResult

__all__ = ["RolloutTicker"]

log = logging.getLogger("flagmw")


class RolloutTicker:
    """Ticks ``controller`` every ``interval`` seconds on a daemon thread.

    Args:
        controller: the controller of the store's rollouts.
        interval: seconds between ticks (> 0).
        on_action: called with each :class:`TickResult` whose action is not ``wait``
            (on the ticker's thread; an exception it raises is logged and counted).
        actor: the audit log's actor for the ticker's transitions.

    Attributes:
        ticks: completed ticks; errors: failed ticks and failed ``on_action`` calls.

    Raises:
        ValueError: ``interval`` is not positive.
    """

    def __init__(
        self,
        controller: RolloutController,
        interval: float,
        *,
        on_action: Callable[[TickResult], None] | None = None,
        actor: str = "controller",
    ) -> None:
        if not interval > 0:
            raise ValueError(f"the rollout tick interval must be positive, not {interval!r}")
        self.controller = controller
        self.interval = float(interval)
        self.on_action = on_action
        self.actor = actor
        self.ticks = 0
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick_once(self) -> list[TickResult]:
        """One tick now, on the caller's thread (what the timer runs). Returns what it
        did to each running rollout; ``[]`` when the tick failed (logged, counted)."""
        try:
            results = self.controller.tick(actor=self.actor)
        except Exception:
            self.errors += 1
            log.warning("flagmw: rollout tick failed; trying again next tick", exc_info=True)
            return []
        self.ticks += 1
        for result in results:
            if result.action == "wait" or self.on_action is None:
                continue
            try:
                self.on_action(result)
            except Exception:
                self.errors += 1
                log.warning("flagmw: reporting a rollout %s failed", result.action, exc_info=True)
        return results

    def start(self) -> None:
        """Start the timer thread (the first tick one ``interval`` from now)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="flagmw-rollout-tick", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the timer and wait up to ``timeout`` seconds for a tick in progress."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick_once()
