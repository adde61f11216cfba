"""CandidateMemo: results derived from a RunConfig's candidates, remembered for the
runs that share those candidates.

The runs resolved against one snapshot for one audience share their
:class:`~flagmw.core.candidate.Candidate` objects (the resolver copies the compiled
base and replaces entries with precompiled candidates), so what is derived from the
candidates alone — the values and provenance members of a pin
(:mod:`flagmw.langgraph.pin`) — is the same for all of them. A :class:`CandidateMemo`
returns such a result only when the candidates are, in the same order and under the
same keys, the very objects it was computed from: identity, not equality (``1`` and
``1.0`` compare equal, but a pin writes them differently).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Generic, TypeVar

from flagmw.core.candidate import Candidate

__all__ = ["CandidateMemo"]

T = TypeVar("T")


class CandidateMemo(Generic[T]):
    """A bounded memo of ``result`` per candidates mapping, keyed by the ids of its
    candidates in order (each entry holds the candidates, so their ids cannot be reused
    while it exists) and checked against its keys.

    Thread-safe for its purpose: entries are added and read whole; a race costs a
    recomputation.

    Args:
        size: entries kept (audiences resolved at once); when more are put, the memo is
            emptied and refills.
    """

    __slots__ = ("_entries", "_size")

    def __init__(self, size: int = 512) -> None:
        self._size = size
        self._entries: dict[tuple[int, ...], tuple[tuple[str, ...], tuple[Candidate, ...], T]] = {}

    def get(self, candidates: Mapping[str, Candidate]) -> T | None:
        """The result put for these very candidates under these keys, else None."""
        entry = self._entries.get(tuple(map(id, candidates.values())))
        if entry is None:
            return None
        keys, _, result = entry
        return result if keys == tuple(candidates) else None

    def put(self, candidates: Mapping[str, Candidate], result: T) -> None:
        """Remember ``result`` for these candidates under these keys."""
        values = tuple(candidates.values())
        if len(self._entries) >= self._size:
            self._entries.clear()
        self._entries[tuple(map(id, values))] = (tuple(candidates), values, result)
