"""The rollout store of a :class:`~flagmw.stores.memory.MemoryStore` (tests, demos)."""

from __future__ import annotations

import copy
import threading
from typing import Any

from flagmw.rollout.store import RolloutStore
from flagmw.stores.memory import MemoryStore

__all__ = ["MemoryRolloutStore", "memory_rollout_store"]

_ATTR = "_flagmw_rollout_store"


class MemoryRolloutStore(RolloutStore):
    """Dictionaries behind a lock; documents are copied in and out."""

    name = "memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._docs: dict[str, dict[str, dict[str, Any]]] = {}
        self._logs: dict[str, list[tuple[float, dict[str, Any]]]] = {}

    def _insert(self, kind: str, id: str, doc: dict[str, Any]) -> dict[str, Any] | None:
        with self._lock:
            docs = self._docs.setdefault(kind, {})
            if id in docs:
                return copy.deepcopy(docs[id])
            docs[id] = copy.deepcopy(doc)
            return None

    def _cas(self, kind: str, id: str, doc: dict[str, Any], expected: int) -> bool:
        with self._lock:
            docs = self._docs.setdefault(kind, {})
            old = docs.get(id)
            if (int(old.get("seq", 0)) if old else 0) != expected:
                return False
            docs[id] = copy.deepcopy(doc)
            return True

    def _get(self, kind: str, id: str) -> dict[str, Any] | None:
        with self._lock:
            doc = self._docs.get(kind, {}).get(id)
            return None if doc is None else copy.deepcopy(doc)

    def _list(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(d) for d in self._docs.get(kind, {}).values()]

    def _append(self, kind: str, at: float, docs: list[dict[str, Any]]) -> None:
        with self._lock:
            log = self._logs.setdefault(kind, [])
            log.extend((float(d.get("at", at)), copy.deepcopy(d)) for d in docs)

    def _read_log(self, kind: str, since: float, limit: int) -> list[dict[str, Any]]:
        with self._lock:
            rows = sorted(
                (e for e in self._logs.get(kind, []) if e[0] >= since), key=lambda e: e[0]
            )
            return [copy.deepcopy(d) for _, d in rows[-limit:]]

    def _prune(self, kind: str, before: float) -> int:
        with self._lock:
            log = self._logs.get(kind, [])
            keep = [e for e in log if e[0] >= before]
            self._logs[kind] = keep
            return len(log) - len(keep)


def memory_rollout_store(store: MemoryStore) -> MemoryRolloutStore:
    """The one rollout store of ``store`` (kept on it, so every client of that memory
    store shares it)."""
    found = getattr(store, _ATTR, None)
    if found is None:
        found = MemoryRolloutStore()
        setattr(store, _ATTR, found)
    return found
