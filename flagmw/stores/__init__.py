"""Stores: where snapshots, overrides and the audit log live (see :mod:`flagmw.stores.base`).

``PostgresStore`` (extra ``flagmw[postgres]``) and ``RedisStore`` (extra
``flagmw[redis]``) are imported on first use, so importing this package never imports
psycopg or redis (they are left out of ``__all__`` for the same reason:
``from flagmw.stores import *`` works without the extra).
"""

from typing import TYPE_CHECKING, Any

from flagmw.stores.base import AuditEntry, SnapshotInfo, SnapshotRecord, Store, StoreState
from flagmw.stores.memory import MemoryStore
from flagmw.stores.sqlite import SQLiteStore
from flagmw.stores.url import open_store

if TYPE_CHECKING:  # pragma: no cover
    from flagmw.stores.postgres import PostgresStore as PostgresStore
    from flagmw.stores.redis import RedisStore as RedisStore

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
    if name == "RedisStore":
        from flagmw.stores.redis import RedisStore as RedisStore

        return RedisStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
