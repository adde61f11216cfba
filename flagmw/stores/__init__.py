"""Stores: where snapshots, overrides and the audit log live (see :mod:`flagmw.stores.base`).

``PostgresStore`` (extra ``flagmw[postgres]``) is imported on first use, so importing
this package never imports psycopg (it is left out of ``__all__`` for the same reason:
``from flagmw.stores import *`` works without the extra).
"""

from typing import TYPE_CHECKING, Any

from flagmw.stores.base import AuditEntry, SnapshotInfo, SnapshotRecord, Store, StoreState
from flagmw.stores.memory import MemoryStore
from flagmw.stores.sqlite import SQLiteStore
from flagmw.stores.url import open_store

if TYPE_CHECKING:  # pragma: no cover
    from flagmw.stores.postgres import PostgresStore as PostgresStore

__all__ = [
    "AuditEntry",
    "MemoryStore",
    "SQLiteStore",
    "SnapshotInfo",
    "SnapshotRecord",
    "Store",
    "StoreState",
    "open_store",
]


def __getattr__(name: str) -> Any:
    if name == "PostgresStore":
        from flagmw.stores.postgres import PostgresStore as PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
