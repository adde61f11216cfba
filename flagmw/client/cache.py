"""The evaluation cache a process keeps: the compiled head snapshot and the overrides
in force, refreshed when the store's change token moves.

The check is cheap enough for every step boundary of every run (:meth:`EvaluationCache.poll`,
≈0.3 µs on the SQLite store); there is no background thread, so the cache is safe inside
asyncio, and after ``fork`` (a hook gives the child a fresh lock).

Rules the cache keeps:

* **Monotonic.** A refresh reads the store and installs what it read under one lock, so
  a read that started earlier can never be installed after a later one: the served rev
  and the override set never go back (and a head rev below the one already seen is never
  installed, whatever the store returns).
* **Every override boundary is a change.** The :attr:`~EvaluationCache.generation` moves
  when an override in force starts (its ``created_at`` may be after this process's clock
  when the hosts' clocks disagree) and when one expires, not only when the store changes.
* **Fail safe.** When the store cannot be read the cache keeps serving the last good
  snapshot and says so in the log and in :meth:`~EvaluationCache.status`; when the head
  snapshot does not validate against the application's registry (schema drift after a
  deploy) it keeps the last good snapshot and reports the problems.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flagmw.client.canary import CanaryServing
from flagmw.client.last_good import LastGood, load_last_good, save_last_good
from flagmw.client.overlays import (
    first_lazy_document,
    is_lazy,
    loaded_document,
    next_lazy_document,
)
from flagmw.client.results import ClientStatus
from flagmw.core.compiled import CompiledSnapshot, View
from flagmw.core.override_index import OverrideIndex
from flagmw.core.overrides import Override
from flagmw.core.registry import FlagRegistry
from flagmw.core.snapshot import Snapshot, validate_document
from flagmw.core.source import Locator
from flagmw.core.versions import VersionCatalog
from flagmw.errors import FlagmwError, Problem, StoreUnavailableError, ValidationError
from flagmw.stores.base import SnapshotInfo, Store, StoreState

__all__ = ["EvaluationCache", "next_change_after"]

log = logging.getLogger("flagmw")

#: A token no store returns: the next poll() goes to refresh().
_STALE: Any = object()

#: Seconds between two reads of a store that failed.
RETRY_INTERVAL = 1.0

_LIVE: weakref.WeakSet[EvaluationCache] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A lock held by another thread at fork() stays held forever in the child (that
    # thread does not exist there): give every cache a fresh one.
    for cache in list(_LIVE):
        cache._lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


def next_change_after(
    overrides: Iterable[Override], t: float, environment: str, registry: FlagRegistry
) -> float | None:
    """The earliest time strictly after ``t`` at which an override of ``environment``
    starts (``created_at``) or expires (``expires_at``), or None.

    Ended overrides and overrides of keys the registry does not define never change a
    resolution, so they are left out. Times are seconds since the epoch.
    """
    later = [
        when
        for ov in overrides
        if ov.ended_at is None and ov.applies_to(environment) and registry.get(ov.key)
        for when in (ov.created_at, ov.expires_at)
        if when > t
    ]
    return min(later) if later else None


class EvaluationCache(CanaryServing):
    """The compiled head snapshot and the overrides in force, kept fresh.

    The base of :class:`~flagmw.client.FlagClient`; see the module docstring for the
    rules it keeps.

    Args:
        registry: the application's registry.
        store: where snapshots and overrides live.
        environment: the deployment environment whose slice is served.
        clock: seconds since the epoch (UTC).
        env_values: typed ``FF_`` values for the environment layer (may be empty).
    """

    def __init__(
        self,
        registry: FlagRegistry,
        store: Store,
        environment: str,
        clock: Callable[[], float],
        env_values: Mapping[str, Any],
        *,
        last_good_file: str | os.PathLike[str] | None = None,
        startup_timeout: float = 0.0,
    ) -> None:
        self.registry = registry
        self.store = store
        self.environment = environment
        self.clock = clock
        self._env_values = dict(env_values)
        self._change_token = store.change_token  # bound once: poll() is on the hot path
        # held across a refresh's read of the store and its install (see _refresh_locked)
        self._lock = threading.Lock()
        # the agent versions the version layer serves (flagmw.rollout adds to it)
        self.versions = VersionCatalog()
        self._compiled = CompiledSnapshot(registry, None, None, self._env_values, self.versions)
        self._view: View = self._compiled.view(environment)
        self._overrides = OverrideIndex((), registry, environment)
        self._other_envs: dict[str, tuple[View, OverrideIndex]] = {}
        self._canary_envs: dict[str, View] = {}  # flagmw.client.canary
        self._token: Any = None
        self._next_change: float | None = None
        self._generation = 0
        self._retry_at = 0.0
        self._healthy = True
        self._head_rev: int | None = None
        self._last_error: str | None = None
        self._last_error_at: float | None = None
        self._rejected: tuple[int | None, tuple[Problem, ...]] = (None, ())
        self._last_refresh_at: float | None = None
        self._last_good_file = last_good_file
        self._served_info: SnapshotInfo | None = None
        _LIVE.add(self)
        subscribe = getattr(store, "on_change", None)
        if subscribe is not None:  # a pushing store: its listener thread refreshes us
            subscribe(self._pushed)
        self.refresh()
        if not self._healthy and self._compiled.rev is None:
            self._start_up(startup_timeout)

    # -- change detection ----------------------------------------------------------------

    @property
    def generation(self) -> int:
        """A local counter that moves whenever what ``resolve`` would return may have
        changed: a new snapshot, an override set / renewed / ended, or an override's
        start or expiry passing. It never goes back. Compare it between step boundaries
        (:meth:`poll`)."""
        return self._generation

    def poll(self) -> int:
        """The cheap check at a step boundary: refresh if the store changed or an
        override started or expired, and return :attr:`generation`. ≈0.3 µs when nothing
        changed (one read of the store's change token, one comparison)."""
        try:
            token = self._change_token()
        except FlagmwError as exc:
            self._fail(exc)
            return self._generation
        if token != self._token:
            self.refresh()
        nxt = self._next_change
        if nxt is not None and self.clock() >= nxt:
            with self._lock:
                if self._next_change == nxt:  # not already moved on by another thread
                    self._next_change = self._next_change_after(self.clock())
                    self._generation += 1
        return self._generation

    def _pushed(self) -> None:
        """The store's listener learnt of a change: read it now, in that thread, so the
        next step boundary (an event loop's included) finds it installed. Never waits:
        when another thread is refreshing (a start-up waiting for this very listener),
        that refresh or the next ``poll()`` installs it."""
        if not self._healthy and self.clock() < self._retry_at:
            return
        if not self._lock.acquire(blocking=False):
            return
        try:
            self._refresh_locked(False)
        finally:
            self._lock.release()

    def _next_change_after(self, t: float) -> float | None:
        return next_change_after(self._overrides.overrides, t, self.environment, self.registry)

    @property
    def snapshot_rev(self) -> int | None:
        """The rev being served (None: nothing published, defaults only)."""
        return self._compiled.rev

    # -- refresh -------------------------------------------------------------------------

    def refresh(self, *, force: bool = False) -> bool:
        """Read the store when its change token moved (or ``force``); returns True when
        the served snapshot or overrides changed. Never raises for store problems:
        they are logged and reported by :meth:`status`.

        Concurrent calls are serialised: the store is read and what was read installed
        under one lock, so the served rev and overrides never go back.
        """
        if not force and not self._healthy and self.clock() < self._retry_at:
            return False
        with self._lock:
            return self._refresh_locked(force)

    def _refresh_locked(self, force: bool) -> bool:
        now = self.clock()
        try:
            token = self._change_token()
            if token == self._token and not force:
                return False  # another thread installed this state meanwhile
            state = self.store.read_state(now)
        except FlagmwError as exc:
            self._fail(exc)
            return False
        changed = self._install(state, now)
        if changed and self._healthy and self._last_good_file is not None:
            snapshot = self._compiled.snapshot
            save_last_good(
                self._last_good_file,
                self._served_info,
                loaded_document(snapshot.document) if snapshot is not None else {},
                self._overrides.overrides,
                now,
            )
        return changed

    def _start_up(self, timeout: float) -> None:
        """The store could not be read at start-up and nothing was ever served: start
        from the last-known-good file, else keep trying for ``timeout`` seconds, else
        raise — never serve registry defaults because the store was down."""
        if self._last_good_file is not None:
            last = load_last_good(self._last_good_file, self.registry.fingerprint)
            if last is not None:
                self._install_last_good(last)
                return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))
            self.refresh(force=True)
            if self._healthy:
                return
        raise StoreUnavailableError(
            self.store.name,
            f"no snapshot could be read within {timeout:g} s and there is no usable "
            "last-known-good file: refusing to serve registry defaults (start the client "
            "with last_good_file=… to start from the last config it served)",
        )

    def _install_last_good(self, last: LastGood) -> None:
        info = last.info
        if info is not None:
            snapshot = Snapshot(last.document, info.content_hash)
            self._compiled = CompiledSnapshot(
                self.registry, snapshot, info.rev, self._env_values, self.versions
            )
            self._view = self._compiled.view(self.environment)
            self._served_info = info
        self._overrides = OverrideIndex(last.overrides, self.registry, self.environment)
        self._next_change = self._next_change_after(self.clock())
        self._generation += 1
        age = max(0.0, self.clock() - last.saved_at)
        self._last_error = (
            f"{self._last_error}; serving the last-known-good config from "
            f"{self._last_good_file} (rev {self._compiled.rev}, saved {age:.0f} s ago)"
        )
        log.warning("flagmw: %s", self._last_error)

    def _install(self, state: StoreState, now: float) -> bool:
        head = state.head
        if head is not None and self._head_rev is not None and head.rev < self._head_rev:
            # An older state than one already installed (a store read that lags): never
            # go back. The token stays, so the next poll reads the store again.
            log.warning(
                "flagmw: store %s returned head rev %s after rev %s; ignored",
                self.store.name,
                head.rev,
                self._head_rev,
            )
            return False
        # an override's start or expiry passed since the last look: a change even when
        # the store's content is the same
        passed = self._next_change
        changed = passed is not None and now >= passed
        failed = False
        self._head_rev = head.rev if head else None
        # a canary head serves its baseline by default (flagmw.client.canary)
        serve, failed = self._default_info(head)
        if serve is not None and serve.rev != self._compiled.rev and serve.rev != self._rejected[0]:
            compiled = self._load(serve)
            if compiled is not None:
                self._compiled = compiled
                self._served_info = serve
                self._view = compiled.view(self.environment)
                changed = True
            else:
                failed = self._rejected[0] != serve.rev  # the store failed, not the registry
        if not failed and self._install_canary(head):
            changed = True
        index = OverrideIndex(state.overrides, self.registry, self.environment)
        if changed or index.overrides != self._overrides.overrides:
            self._overrides = index
            changed = True
            for ov in index.ignored:
                log.warning(
                    "flagmw: override %s of unknown flag %r ignored (not in this "
                    "application's registry)",
                    ov.id,
                    ov.key,
                )
        if changed:
            self._other_envs = {}
        self._next_change = self._next_change_after(now)
        self._last_refresh_at = now
        if changed:
            self._generation += 1
        if failed:
            return changed  # _fail() left the token stale: the head is read again later
        self._token = state.token
        if not self._healthy:
            log.info(
                "flagmw: store %s is reachable again (serving rev %s)",
                self.store.name,
                self._compiled.rev,
            )
        self._healthy = True
        return changed

    def _load(self, head: SnapshotInfo) -> CompiledSnapshot | None:
        """Compile the head snapshot, validating it when it was published against a
        different registry; None (and a report) when it does not fit."""
        if head.registry_fingerprint == self.registry.fingerprint:
            # the base now, each tenant's and route's overlay on first use (and after
            # a publish only the changed ones): flagmw.client.overlays
            try:
                record = self.store.get_snapshot(head.rev, overlays=False)
                old = self._compiled
                if old.rev is not None and old.rev < head.rev and is_lazy(old.document):
                    doc = next_lazy_document(
                        self.store, old.document, head.rev, record.document, self._fail
                    )
                else:
                    doc = first_lazy_document(self.store, head.rev, record.document, self._fail)
            except FlagmwError as exc:
                self._fail(exc)
                return None
            self._rejected = (None, ())
            snapshot = Snapshot(doc, record.info.content_hash)
            return CompiledSnapshot(
                self.registry, snapshot, head.rev, self._env_values, self.versions
            )
        try:
            record = self.store.get_snapshot(head.rev)
        except FlagmwError as exc:
            self._fail(exc)
            return None
        if record.info.registry_fingerprint == self.registry.fingerprint:
            snapshot = Snapshot(record.document, record.info.content_hash)
        else:
            try:
                snapshot = validate_document(
                    record.document,
                    self.registry,
                    locator=Locator(f"{self.store.name} rev {head.rev}"),
                )
            except ValidationError as exc:
                self._rejected = (head.rev, exc.errors)
                self._last_error = (
                    f"snapshot rev {head.rev} does not fit this application's "
                    f"registry ({len(exc.errors)} problems); serving rev "
                    f"{self._compiled.rev}"
                )
                self._last_error_at = self.clock()
                log.error(
                    "flagmw: %s:\n%s", self._last_error, "\n".join(f"  - {p}" for p in exc.errors)
                )
                return None
        self._rejected = (None, ())
        return CompiledSnapshot(self.registry, snapshot, head.rev, self._env_values, self.versions)

    def _fail(self, exc: Exception) -> None:
        now = self.clock()
        if self._healthy:
            log.warning(
                "flagmw: store %s unavailable (%s); serving the last good snapshot (rev %s)",
                self.store.name,
                exc,
                self._compiled.rev,
            )
        self._healthy = False
        self._last_error = str(exc)
        self._last_error_at = now
        self._retry_at = now + RETRY_INTERVAL
        # a token no store returns: the next poll() goes to refresh(), which retries the
        # store once _retry_at has passed and marks the cache healthy again on success
        self._token = _STALE

    # -- what is served ------------------------------------------------------------------

    @property
    def serving_stale(self) -> bool:
        """True when what is served may be older than the store's truth: the store is
        unreachable, the head rev was rejected, or a newer head is not installed yet
        (:attr:`ClientStatus.stale`, without building the status)."""
        return (
            not self._healthy
            or self._rejected[0] is not None
            or (self._want_rev is not None and self._want_rev != self._compiled.rev)
        )

    def status(self) -> ClientStatus:
        """The client's view of its store (see :class:`ClientStatus`)."""
        rejected_rev, problems = self._rejected
        stale = self.serving_stale
        return ClientStatus(
            store=self.store.name,
            environment=self.environment,
            snapshot_rev=self._compiled.rev,
            head_rev=self._head_rev,
            healthy=self._healthy,
            stale=stale,
            last_error=self._last_error,
            last_error_at=self._last_error_at,
            rejected_rev=rejected_rev,
            rejected_problems=problems,
            active_overrides=len(self._overrides.overrides),
            last_refresh_at=self._last_refresh_at,
            canary_rev=self.canary_rev,
        )

    def _scope(self, env: str | None) -> tuple[View, OverrideIndex]:
        """The compiled view and the override index of an environment (the cache's
        when ``env`` is None); other environments are built on first use and dropped at
        the next refresh that changes anything."""
        if env is None or env == self.environment:
            return self._view, self._overrides
        pair = self._other_envs.get(env)
        if pair is None:
            pair = (
                self._compiled.view(env),
                OverrideIndex(self._overrides.overrides, self.registry, env),
            )
            self._other_envs[env] = pair
        return pair
