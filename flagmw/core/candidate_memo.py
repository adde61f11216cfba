"""CandidateMemo: results derived from a RunConfig's candidates, remembered by the
identity of those candidates.

The runs resolved against one snapshot for one audience share their
:class:`~flagmw.core.candidate.Candidate` objects (the resolver copies the compiled
base and replaces entries with precompiled candidates), so what is derived from the
candidates alone — the ``config_hash``, the values and provenance members of a pin —
is the same for all of them. A :class:`CandidateMemo` returns such a result when the
candidates are the very objects, in the same order and under the same keys, it was
computed from; anything else is a miss and the caller computes afresh. Identity, not
equality: ``1`` and ``1.0`` (or ``True``) compare equal but write differently.
"""

from __future__ import annotations

from collections.abc import Mapping
from operator import is_
from typing import Generic, TypeVar

from flagmw.core.candidate import Candidate

__all__ = ["CandidateMemo"]

T = TypeVar("T")


class CandidateMemo(Generic[T]):
    """A bounded memo of ``result`` per sequence of candidates (compared by identity).

    Each entry holds the candidates it was computed from, so their ids cannot be reused
    while it exists. Thread-safe for its purpose: a lookup never returns a result for
    other candidates (entries are replaced whole; a race costs a recomputation).

    Args:
        size: entries kept (distinct audiences resolved at once); when full, the memo is
            emptied and refills.
    """

    __slots__ = ("_entries", "_size")

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._entries: dict[tuple[int, int, int], tuple[tuple[str, ...], tuple[Candidate, ...], T]]
        self._entries = {}

    @staticmethod
    def key(candidates: Mapping[str, Candidate]) -> tuple[tuple[str, ...], tuple[Candidate, ...]]:
        """``(keys, candidates)`` of a candidates mapping, in its order: what
        :meth:`get` and :meth:`put` take."""
        return tuple(candidates), tuple(candidates.values())

    def get(self, keys: tuple[str, ...], cands: tuple[Candidate, ...]) -> T | None:
        """The result put for these very candidates under these keys, else None."""
        if not cands:
            return None
        entry = self._entries.get((len(cands), id(cands[0]), id(cands[-1])))
        if entry is None:
            return None
        their_keys, theirs, result = entry
        if all(map(is_, theirs, cands)) and their_keys == keys:
            return result
        return None

    def put(self, keys: tuple[str, ...], cands: tuple[Candidate, ...], result: T) -> None:
        """Remember ``result`` for these candidates under these keys."""
        if not cands:
            return
        if len(self._entries) >= self._size:
            self._entries.clear()
        self._entries[(len(cands), id(cands[0]), id(cands[-1]))] = (keys, cands, result)
