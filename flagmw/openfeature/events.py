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

from flagmw.client.overlays import StoreOverlays
from flagmw.core.overrides import Override

if TYPE_CHECKING:  # pragma: no cover
    from flagmw.client.client import FlagClient

__all__ = ["EventWatcher", "changed_keys", "document_changes"]

log = logging.getLogger("flagmw")

Emit = Callable[[ProviderEvent, ProviderEventDetails], None]

READY, STALE, ERROR = "ready", "stale", "error"


_ABSENT: Any = object()


def _mapping_changes(a: Mapping[str, Any], b: Mapping[str, Any]) -> set[str]:
    """The names whose entry differs between ``a`` and ``b`` (added, removed, changed)."""
    if a is b:
        return set()
    return {k for k in a.keys() | b.keys() if a.get(k, _ABSENT) != b.get(k, _ABSENT)}


def _rule_parts(rules: Iterable[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Key → what the rules say about it, in rule order (name, condition, rollout, value)."""
    out: dict[str, list[Any]] = {}
    for rule in rules:
        for key, value in rule.get("set", {}).items():
            out.setdefault(key, []).append(
                (rule.get("name"), rule.get("when"), rule.get("rollout"), value)
            )
    return out


def _overlay_changes(a: Mapping[str, Any], b: Mapping[str, Any]) -> set[str]:
    """The keys an overlay (the document's top level, an environment, tenant or route)
    decides differently: its values, its rules per key, its ``requires``."""
    keys = _mapping_changes(a.get("values", {}), b.get("values", {}))
    rules_a, rules_b = a.get("rules", []), b.get("rules", [])
    if rules_a != rules_b:
        keys |= _mapping_changes(_rule_parts(rules_a), _rule_parts(rules_b))
    keys |= set(a.get("requires", ())) ^ set(b.get("requires", ()))
    return keys


def _ruled(document: Mapping[str, Any]) -> set[str]:
    """Keys decided by a rule or an experiment anywhere in ``document``."""
    keys = set(_rule_parts(document.get("rules", [])))
    for section in ("environments", "tenants", "routes"):
        for overlay in document.get(section, {}).values():
            keys |= set(_rule_parts(overlay.get("rules", [])))
    keys |= {exp["flag"] for exp in document.get("experiments", {}).values()}
    return keys


def document_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> set[str]:
    """The flag keys that a part of a (normalised) snapshot document able to decide them
    differs for, from ``before`` to ``after``: values and rules (per key, in order) of
    the top level and of every environment, tenant and route overlay, ``requires``,
    experiments (their flag); a change of ``segments`` touches every key decided by a
    rule or experiment (which may name one). Sections and overlays that compare equal
    are skipped whole, so one changed tenant among 100 000 costs one comparison of the
    section and the changed overlay's keys."""
    keys = _overlay_changes(before, after)
    for section in ("environments", "tenants", "routes"):
        sa, sb = before.get(section, {}), after.get(section, {})
        if sa is sb:
            continue
        if isinstance(sa, StoreOverlays) and isinstance(sb, StoreOverlays):
            # overlays read on first use (100k tenants): only those the store says
            # changed between the two revs are compared, never the whole section
            for name in sb.changed_since(sa):
                keys |= _overlay_changes(sa.get(name, {}), sb.get(name, {}))
            continue
        if sa == sb:
            continue
        for name, a in sa.items():
            b = sb.get(name, _ABSENT)
            if b is _ABSENT:
                keys |= _overlay_changes(a, {})
            elif a is not b and a != b:
                keys |= _overlay_changes(a, b)
        for name in sb.keys() - sa.keys():
            keys |= _overlay_changes({}, sb[name])
    ea, eb = before.get("experiments", {}), after.get("experiments", {})
    for name in _mapping_changes(ea, eb):
        keys |= {exp["flag"] for exp in (ea.get(name), eb.get(name)) if exp is not None}
    if before.get("segments", {}) != after.get("segments", {}):
        keys |= _ruled(before) | _ruled(after)
    return keys


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
            if self._doc is not None:  # the first look is a baseline: nothing changed
                flags |= document_changes(self._doc, doc)
            self._doc = doc
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
