"""Every store backend, by name, for the one contract suite (``tests/test_store_contract.py``
and the protocol tests in ``tests/test_stores.py``).

Each entry builds a fresh, empty, isolated store and returns it with a cleanup function:
a temporary SQLite file, a private PostgreSQL schema, a private Redis key prefix. Server
backends read ``FLAGMW_TEST_POSTGRES_URL`` / ``FLAGMW_TEST_REDIS_URL`` and skip with a
clear reason when unset (``.ci/run`` sets them and turns a skip into a failure).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from flagmw import MemoryStore, SQLiteStore, Store

#: name → factory(tmp_path) -> (store, cleanup)
StoreFactory = Callable[[Path], tuple[Store, Callable[[], None]]]


def _memory(tmp_path: Path) -> tuple[Store, Callable[[], None]]:
    s = MemoryStore()
    return s, s.close


def _sqlite(tmp_path: Path) -> tuple[Store, Callable[[], None]]:
    s = SQLiteStore(tmp_path / "s.db", create=True)
    return s, s.close


STORE_KINDS: dict[str, StoreFactory] = {
    "memory": _memory,
    "sqlite": _sqlite,
}
