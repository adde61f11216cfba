"""Stores: where snapshots, overrides and the audit log live (see :mod:`flagmw.stores.base`)."""

from flagmw.stores.base import AuditEntry, SnapshotInfo, SnapshotRecord, Store, StoreState
from flagmw.stores.memory import MemoryStore
from flagmw.stores.sqlite import SQLiteStore
from flagmw.stores.url import open_store

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
