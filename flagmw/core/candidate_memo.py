"""CandidateMemo: results derived from a RunConfig's candidates, remembered for the
runs that share those candidates.

The runs resolved against one snapshot for one audience share their
:class:`~flagmw.core.candidate.Candidate` objects (the resolver copies the compiled
base and replaces entries with precompiled candidates), so what is derived from the
candidates alone — the ``config_hash``, the values and provenance members of a pin —
is the same for all of them. A :class:`CandidateMemo` returns such a result when the
candidates are, in the same order and under the same keys, the very objects it was
computed from (``identity=True``) or equal to them (``identity=False``, for results
that depend only on what equal candidates share, e.g. their hash fragments: ``1`` and
``1.0`` compare equal and have one fragment, but a pin writes them differently).
"""

from __future__ import annotations

from collections.abc import Mapping
from operator import is_
from typing import Generic, TypeVar

from flagmw.core.candidate import Candidate

__all__ = ["CandidateMemo"]

T = TypeVar("T")

_Entry = tuple[tuple[str, ...], tuple[Candidate, ...], T]

#: entries kept per slot (audiences whose first and last candidates are the same
#: objects, e.g. two tenants that differ in a middle flag only)
_PER_SLOT = 8


class CandidateMemo(Generic[T]):
    """A bounded memo of ``result`` per candidates mapping.

    Entries are slotted by the number of candidates and the ids of the first and last
    ones, a slot holding up to 8 entries (audiences share most candidates); each
    entry holds the candidates it was computed from, so their ids cannot be reused while
    it exists. Thread-safe for its purpose: a lookup never returns a result for other
    candidates (slots are replaced whole; a race costs a recomputation).

    Args:
        identity: a hit needs the very candidate objects (else equal ones suffice).
        size: slots kept; when full, the memo is emptied and refills.
    """

    __slots__ = ("_entries", "_identity", "_size")

    def __init__(self, *, identity: bool = True, size: int = 64) -> None:
        self._identity = identity
        self._size = size
        self._entries: dict[tuple[int, int, int], tuple[_Entry[T], ...]] = {}

    def get(self, candidates: Mapping[str, Candidate]) -> T | None:
        """The result put for these candidates under these keys, else None."""
        values = tuple(candidates.values())
        if not values:
            return None
        entries = self._entries.get((len(values), id(values[0]), id(values[-1])))
        if entries is None:
            return None
        keys: tuple[str, ...] | None = None
        for their_keys, theirs, result in entries:
            # tuple equality checks identity first: C speed when the objects are shared
            if theirs != values or (self._identity and not all(map(is_, theirs, values))):
                continue
            if keys is None:
                keys = tuple(candidates)
            if their_keys == keys:
                return result
        return None

    def put(self, candidates: Mapping[str, Candidate], result: T) -> None:
        """Remember ``result`` for these candidates under these keys."""
        values = tuple(candidates.values())
        if not values:
            return
        slot = (len(values), id(values[0]), id(values[-1]))
        entries = self._entries.get(slot, ())
        if slot not in self._entries and len(self._entries) >= self._size:
            self._entries.clear()
        entry: _Entry[T] = (tuple(candidates), values, result)
        self._entries[slot] = (entry, *entries[: _PER_SLOT - 1])
