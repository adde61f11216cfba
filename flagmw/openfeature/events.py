"""Provider events from the client's own change detection — no thread of their own.

The :class:`~flagmw.client.FlagClient` already notices every change at the cost of one
counter read (its :attr:`~flagmw.client.FlagClient.generation` moves when a rev is
published, an override starts, is renewed, ends or expires) and knows when it serves a
stale config (:attr:`~flagmw.client.FlagClient.serving_stale`). :class:`EventWatcher`
compares both with what it saw last, after each live evaluation and on
:meth:`FlagmwProvider.poll() <flagmw.openfeature.FlagmwProvider.poll>`:

* the generation moved → ``PROVIDER_CONFIGURATION_CHANGED`` with ``flags_changed``: the
  keys whose part of the served snapshot document changed (values, rules, tenant and
  route overlays, experiments of every environment) or whose overrides changed; the
  metadata carries the new ``version`` (snapshot rev). No event when nothing a key
  depends on changed (e.g. a publish of the same content);
* the store became unreachable (the client keeps serving its last good config) →
  ``PROVIDER_STALE``;
* the store's head rev does not fit the application's registry (the client keeps the
  older rev) → ``PROVIDER_ERROR`` with ``PARSE_ERROR``;
* back to normal → ``PROVIDER_READY``.

The check when nothing changed is two attribute reads and two comparisons; the work
(diffing two documents) happens once per change, on the thread that noticed it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from openfeature.event import ProviderEvent, ProviderEventDetails
from openfeature.exception import ErrorCode

from flagmw.core.overrides import Override

if TYPE_CHECKING:  # pragma: no cover
    from flagmw.client.client import FlagClient

__all__ = ["EventWatcher", "changed_keys", "key_signatures"]

log = logging.getLogger("flagmw")

Emit = Callable[[ProviderEvent, ProviderEventDetails], None]

READY, STALE, ERROR = "ready", "stale", "error"


def _overlay_keys(
    overlay: Mapping[str, Any], parts: dict[str, list[Any]], ruled: set[str], where: str
) -> None:
    for key, value in overlay.get("values", {}).items():
        parts.setdefault(key, []).append([where, value])
    for rule in overlay.get("rules", ()):
        for key, value in rule.get("set", {}).items():
            ruled.add(key)
            parts.setdefault(key, []).append(
                [where, rule.get("name"), rule.get("when"), rule.get("rollout"), value]
            )


def key_signatures(document: Mapping[str, Any]) -> dict[str, str]:
    """Flag key → a text that changes exactly when a part of ``document`` (a normalised
    snapshot document) that can decide the key changes. A change of the ``segments``
    section touches every key decided by a rule or experiment (which may name one)."""
    parts: dict[str, list[Any]] = {}
    ruled: set[str] = set()
    _overlay_keys(document, parts, ruled, "snapshot")
    for section in ("environments", "tenants", "routes"):
        for name, overlay in document.get(section, {}).items():
            where = f"{section}:{name}"
            _overlay_keys(overlay, parts, ruled, where)
            for key in overlay.get("requires", ()):
                parts.setdefault(key, []).append([where, "requires"])
    for name, exp in document.get("experiments", {}).items():
        ruled.add(exp["flag"])
        parts.setdefault(exp["flag"], []).append(["experiment", name, exp])
    segments = document.get("segments", {})
    return {
        key: json.dumps([found, segments if key in ruled else None], sort_keys=True, default=str)
        for key, found in parts.items()
    }


def _override_signatures(overrides: Iterable[Override], now: float) -> dict[str, str]:
    """Key → its overrides as they stand at ``now`` (whether each is in force included:
    an override starting or expiring changes its key's answer without a store write)."""
    out: dict[str, list[Any]] = {}
    for ov in overrides:
        out.setdefault(ov.key, []).append([ov.active_at(now), ov.to_dict()])
    return {k: json.dumps(sorted(v, key=lambda d: d[1]["id"]), default=str) for k, v in out.items()}


def changed_keys(before: Mapping[str, str], after: Mapping[str, str]) -> set[str]:
    """The keys whose signature differs (added, removed or changed)."""
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}


class EventWatcher:
    """Turns the client's generation and staleness into provider events (see the
    module docs). ``emit`` is the provider's ``emit``; it is called outside the
    watcher's lock, after the watcher's view was updated, so a handler that evaluates
    flags does not see the same change twice."""

    def __init__(self, client: FlagClient, emit: Emit) -> None:
        self._client = client
        self._emit = emit
        self._lock = threading.Lock()
        self._generation = -1
        self._stale = False
        self._state = READY
        self._rev: int | None = None
        self._doc_sigs: dict[str, str] = {}
        self._ov_sigs: dict[str, str] = {}
        self._doc: Mapping[str, Any] | None = None

    def baseline(self) -> str:
        """Take the client's snapshot and overrides as seen, emitting nothing (at
        ``initialize``, after which the SDK reports READY). A stale client is left to
        the next :meth:`check`, which then emits ``PROVIDER_STALE``. Returns the state
        found: ``"ready"``, ``"stale"`` or ``"error"`` (the head rev was rejected; the
        provider's ``initialize`` raises, so the SDK reports ERROR)."""
        with self._lock:
            _, state = self._look()
            self._stale = False
            self._state = ERROR if state == ERROR else READY
            if state == ERROR:
                self._stale = True
            return state

    def _look(self) -> tuple[set[str], str]:
        client = self._client
        self._generation = client.generation
        self._stale = client.serving_stale
        rev, doc, overrides = client.served()
        flags: set[str] = set()
        if doc is not self._doc:
            sigs = key_signatures(doc)
            flags |= changed_keys(self._doc_sigs, sigs)
            self._doc, self._doc_sigs = doc, sigs
        ov_sigs = _override_signatures(overrides, client.clock())
        flags |= changed_keys(self._ov_sigs, ov_sigs)
        self._ov_sigs = ov_sigs
        self._rev = rev
        status = client.status() if self._stale else None
        if status is None:
            state = READY
        elif not status.healthy:
            state = STALE
        elif status.rejected_rev is not None:
            state = ERROR
        else:
            state = READY  # a newer head not installed yet: the next poll installs it
        return flags, state

    def check(self) -> None:
        """Emit what changed since the last look (nothing, cheaply, when nothing did).
        Never raises: an event handler's error is not the evaluation's."""
        client = self._client
        if client.generation == self._generation and client.serving_stale == self._stale:
            return
        if not self._lock.acquire(blocking=False):
            return  # another thread is looking at this very change
        try:
            flags, state = self._look()
            before, self._state = self._state, state
            rev = self._rev
        finally:
            self._lock.release()
        registry = client.registry
        changed = sorted(k for k in flags if k in registry)
        meta: dict[str, bool | int | float | str] = {}
        if rev is not None:
            meta["version"] = str(rev)
        try:
            if state != before:
                if state == STALE:
                    self._emit(
                        ProviderEvent.PROVIDER_STALE,
                        ProviderEventDetails(
                            message=f"store {client.store.name} unreachable; serving the "
                            f"last good config (rev {rev})",
                            metadata=meta,
                        ),
                    )
                elif state == ERROR:
                    st = client.status()
                    self._emit(
                        ProviderEvent.PROVIDER_ERROR,
                        ProviderEventDetails(
                            message=st.last_error or "the store's head rev was rejected",
                            error_code=ErrorCode.PARSE_ERROR,
                            metadata=meta,
                        ),
                    )
                else:
                    self._emit(
                        ProviderEvent.PROVIDER_READY,
                        ProviderEventDetails(message=f"serving rev {rev}", metadata=meta),
                    )
            if changed:
                self._emit(
                    ProviderEvent.PROVIDER_CONFIGURATION_CHANGED,
                    ProviderEventDetails(flags_changed=changed, metadata=meta),
                )
        except Exception:
            import logging

            logging.getLogger("flagmw").exception("flagmw: an OpenFeature event handler failed")
