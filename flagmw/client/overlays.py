"""Tenant and route overlays read from the store on first use (issue 8 §3).

A snapshot with 100k tenants is served from its **base** (every section but
``tenants`` and ``routes``) plus the **names** of its overlays; the body of a tenant's
overlay is read from the store the first time a run of that tenant resolves
(:meth:`~flagmw.stores.base.Store.get_overlays`, one indexed read) and kept. After a
publish, the client reads which overlays changed (:meth:`~flagmw.stores.base.Store.
changed_overlays`) and forgets only those: a one-tenant publish costs a worker one
small read, never a reload of 100k overlays at a step boundary.

:class:`StoreOverlays` is the ``tenants`` (or ``routes``) section of such a document:
a read-only mapping of name → normalised overlay whose ``get`` reads the store on a
miss. When that read fails (the store is unreachable), the failure is reported to the
client (which then says it is stale) and the tenant is served without its overlay for
that call — a run is never crashed by a flag decision; the next call tries again.
"""

from __future__ import annotations

import json
import logging
from array import array
from bisect import bisect_left
from collections.abc import (
    Callable,
    Collection,
    ItemsView,
    Iterable,
    Iterator,
    Mapping,
    ValuesView,
)
from typing import Any

from flagmw.core.snapshot_hash import OVERLAY_SECTIONS
from flagmw.errors import FlagmwError
from flagmw.stores.base import Store

__all__ = [
    "NameIndex",
    "StoreOverlays",
    "first_lazy_document",
    "is_lazy",
    "lazy_document",
    "loaded_document",
    "next_lazy_document",
]

log = logging.getLogger("flagmw")

#: Up to this many changed overlays are read right after a publish (so the names are
#: exact); more are only forgotten and read on first use.
PREFETCH_CHANGED = 64

#: A snapshot with at most this many overlays has all of them read when it is loaded
#: (and every changed one after a publish): a run of a tenant never touched before is
#: then served its overlay even while the store is unreachable. Larger fleets read
#: each overlay on first use.
EAGER_OVERLAYS = 2_000

_MISSING: Any = object()


class NameIndex:
    """The names of one section's overlays at one rev: a sorted array of their
    in-process ``hash()`` values — 8 bytes a name where a set of 100k names takes
    ~10 MB — plus the names found removed since. A name whose hash is present but which
    has no overlay (a removal not yet seen, or a 64-bit collision) costs one store read
    that finds nothing; it is then remembered as absent."""

    __slots__ = ("_absent", "_hashes")

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._hashes = array("q", sorted({hash(n) for n in names}))
        self._absent: set[str] = set()

    def __contains__(self, name: object) -> bool:
        if name in self._absent:
            return False
        h = hash(name)
        a = self._hashes
        i = bisect_left(a, h)
        return i < len(a) and a[i] == h

    def __len__(self) -> int:
        return len(self._hashes)

    def add_many(self, names: Collection[str]) -> None:
        """Names (possibly) added at a later rev."""
        self._absent.difference_update(names)
        a = self._hashes
        if len(names) > 64:
            self._hashes = array("q", sorted(set(a).union(hash(n) for n in names)))
            return
        for name in names:
            h = hash(name)
            i = bisect_left(a, h)
            if i == len(a) or a[i] != h:
                a.insert(i, h)

    def copy(self) -> NameIndex:
        """An independent copy (an array copy)."""
        out = NameIndex()
        out._hashes = array("q", self._hashes)
        out._absent = set(self._absent)
        return out

    def discard(self, name: str) -> None:
        """``name`` has no overlay (found removed)."""
        self._absent.add(name)


class StoreOverlays(Mapping[str, Any]):
    """The overlays of one section (``"tenants"`` or ``"routes"``) of one rev.

    Args:
        store: where they are read from.
        rev: the snapshot rev.
        section: ``"tenants"`` or ``"routes"``.
        names: the names of the overlays the rev has (a removed name may linger until
            its first read finds nothing).
        bodies: the overlays already read (name → compact JSON text: a fifth of the
            memory of the parsed overlay; parsed again when a rev's view compiles it),
            kept and extended, and handed on to the next rev minus what changed.
        on_error: called with the exception when a read fails.
    """

    def __init__(
        self,
        store: Store,
        rev: int,
        section: str,
        names: NameIndex,
        bodies: dict[str, str],
        on_error: Callable[[Exception], None],
    ) -> None:
        self._store = store
        self.rev = rev
        self.section = section
        self.names = names
        self.bodies = bodies
        self._on_error = on_error

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def __len__(self) -> int:
        return len(self.names)

    def __bool__(self) -> bool:
        return bool(self.names)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, StoreOverlays) and other._store is self._store:
            if other.rev == self.rev and other.section == self.section:
                return True
            if other.section == self.section:
                lo, hi = sorted((self.rev, other.rev))
                changed = [n for s, n in self._store.changed_overlays(lo, hi) if s == self.section]
                return all(self.get(n) == other.get(n) for n in changed)
        if not isinstance(other, Mapping):
            return NotImplemented
        if not other or not self.names:
            return not other and not self.names
        try:
            return super().__eq__(other)
        except FlagmwError:
            return False  # cannot be read now: not known to be equal

    __hash__ = None  # type: ignore[assignment]  # a mapping

    def changed_since(self, other: StoreOverlays) -> list[str]:
        """The names whose overlay may differ between ``other``'s rev and this one (one
        store read; no overlay is read).

        Raises:
            StoreUnavailableError: the store cannot be read.
        """
        lo, hi = sorted((self.rev, other.rev))
        return sorted({n for s, n in self._store.changed_overlays(lo, hi) if s == self.section})

    def __iter__(self) -> Iterator[str]:
        """The names, read from the store (operator commands only: the index keeps
        hashes).

        Raises:
            StoreUnavailableError: the store cannot be read.
        """
        return iter(self._all_names())

    def _all_names(self) -> list[str]:
        return sorted(n for s, n in self._store.overlay_names(self.rev) if s == self.section)

    def __getitem__(self, name: str) -> Any:
        body = self.get(name, _MISSING)
        if body is _MISSING:
            raise KeyError(name)
        return body

    def get(self, name: str, default: Any = None) -> Any:
        """The overlay of ``name`` (read from the store on first use), or ``default``
        when the rev has none — or when it cannot be read now (reported)."""
        text = self.bodies.get(name)
        if text is not None:
            return json.loads(text)
        if name not in self.names:
            return default
        try:
            got = self._store.get_overlays(self.rev, [(self.section, name)])
        except FlagmwError as exc:
            log.error(
                "flagmw: %s overlay %r of rev %s could not be read (%s); served without it",
                self.section[:-1],
                name,
                self.rev,
                exc,
            )
            self._on_error(exc)
            return default
        body = got.get((self.section, name))
        if body is None:  # removed at this rev: the names were a superset
            self.names.discard(name)
            return default
        self.bodies[name] = _text(body)
        return body

    def items(self) -> ItemsView[str, Any]:
        """Every ``(name, overlay)``, read in bulk (:meth:`load_all`), not one read per
        name (operator paths: tenants that require a flag, a whole-section compare).

        Raises:
            StoreUnavailableError: the store cannot be read.
        """
        return self.load_all().items()

    def values(self) -> ValuesView[Any]:
        """Every overlay, read in bulk (:meth:`load_all`).

        Raises:
            StoreUnavailableError: the store cannot be read.
        """
        return self.load_all().values()

    def load_all(self) -> dict[str, Mapping[str, Any]]:
        """Every overlay of the section (one bulk read of those not yet read).

        Raises:
            StoreUnavailableError: the store cannot be read.
        """
        names = self._all_names()
        missing = [(self.section, n) for n in names if n not in self.bodies]
        if missing:
            got = self._store.get_overlays(self.rev, missing)
            for (_, name), body in got.items():
                self.bodies[name] = _text(body)
        return {n: json.loads(self.bodies[n]) for n in names if n in self.bodies}


def _text(body: Mapping[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def lazy_document(
    store: Store,
    rev: int,
    base: Mapping[str, Any],
    names: Mapping[str, NameIndex],
    bodies: Mapping[str, dict[str, str]],
    on_error: Callable[[Exception], None],
) -> dict[str, Any]:
    """``base`` with its ``tenants`` and ``routes`` sections read on first use."""
    doc = dict(base)
    for section in OVERLAY_SECTIONS:
        doc[section] = StoreOverlays(
            store, rev, section, names.get(section, NameIndex()), bodies.get(section, {}), on_error
        )
    return doc


def next_lazy_document(
    store: Store,
    previous: Mapping[str, Any],
    rev: int,
    base: Mapping[str, Any],
    on_error: Callable[[Exception], None],
) -> dict[str, Any]:
    """The lazy document of ``rev`` built from the lazy document of an earlier rev:
    the overlays that did not change since are kept; the changed ones are read now
    (up to :data:`PREFETCH_CHANGED`) or forgotten.

    Raises:
        StoreUnavailableError: the store cannot be read.
    """
    names: dict[str, NameIndex] = {}
    bodies: dict[str, dict[str, str]] = {}
    old_rev = 0
    for section in OVERLAY_SECTIONS:
        old = previous[section]
        assert isinstance(old, StoreOverlays)
        old_rev = old.rev
        # copied, so that whoever still holds the earlier rev's document sees that rev:
        # 8 bytes a name and the overlays read so far, well under a millisecond
        names[section] = old.names.copy()
        bodies[section] = dict(old.bodies)
    changed = store.changed_overlays(old_rev, rev)
    for section in OVERLAY_SECTIONS:
        added = [n for s, n in changed if s == section]
        names[section].add_many(added)
        for name in added:
            bodies[section].pop(name, None)
    eager = sum(len(n) for n in names.values()) <= EAGER_OVERLAYS
    if changed and (eager or len(changed) <= PREFETCH_CHANGED):
        got = store.get_overlays(rev, changed)
        for section, name in changed:
            body = got.get((section, name))
            if body is None:
                names[section].discard(name)
            else:
                bodies[section][name] = _text(body)
    return lazy_document(store, rev, base, names, bodies, on_error)


def first_lazy_document(
    store: Store, rev: int, base: Mapping[str, Any], on_error: Callable[[Exception], None]
) -> dict[str, Any]:
    """The lazy document of ``rev`` with no earlier one: the names of its overlays only.

    Raises:
        StoreUnavailableError: the store cannot be read.
    """
    keys = store.overlay_names(rev)
    names = {section: NameIndex(n for s, n in keys if s == section) for section in OVERLAY_SECTIONS}
    bodies: dict[str, dict[str, str]] = {s: {} for s in OVERLAY_SECTIONS}
    if keys and len(keys) <= EAGER_OVERLAYS:
        for (section, name), body in store.get_overlays(rev, keys).items():
            bodies[section][name] = _text(body)
    return lazy_document(store, rev, base, names, bodies, on_error)


def is_lazy(document: Mapping[str, Any]) -> bool:
    """True when ``document``'s overlays are read on first use."""
    return isinstance(document.get("tenants"), StoreOverlays)


def loaded_document(document: Mapping[str, Any]) -> dict[str, Any]:
    """A plain copy of ``document`` (JSON primitives) with, of lazily read sections,
    only the overlays read so far (what a last-known-good file keeps)."""
    doc = dict(document)
    for section in OVERLAY_SECTIONS:
        value = doc.get(section)
        if isinstance(value, StoreOverlays):
            doc[section] = {n: json.loads(value.bodies[n]) for n in sorted(value.bodies)}
    return doc
