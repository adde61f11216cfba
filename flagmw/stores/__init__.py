"""Stores: where snapshots, overrides and the audit log live (see :mod:`flagmw.stores.base`)."""

from .base import AuditEntry, SnapshotInfo, SnapshotRecord, Store, StoreState
from .memory import MemoryStore
from .sqlite import SQLiteStore

__all__ = [
    "AuditEntry",
    "MemoryStore",
    "SQLiteStore",
    "SnapshotInfo",
    "SnapshotRecord",
    "Store",
    "StoreState",
]
