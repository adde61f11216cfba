"""Snapshots that scale, per store: publishing and loading a fleet snapshot whose tenants
are stored one by one (issue 8 §3: a one-tenant change published in ≤ 100 ms with 100k
tenants, tenants loaded lazily).

For each store given (``sqlite``, ``postgres``, ``redis``; the servers from
``FLAGMW_TEST_POSTGRES_URL`` / ``FLAGMW_TEST_REDIS_URL``, in a private schema / key prefix
removed afterwards), with the fleet document of ``--tenants`` tenants
(:func:`benchmarks._snapshots.fleet_document`, validated once, outside the timings):

* ``publish whole (first)``: ``store.publish`` of the whole document on an empty store
  (every overlay written);
* ``publish whole (1 global change)``: the whole document again with one global value
  changed (every overlay compared with the head's, none written);
* ``publish_overlays (1 tenant)``: one tenant's overlay changed;
* ``get_overlays (1 tenant)``, ``get_snapshot(overlays=False)``, ``changed_overlays``
  (last rev), ``get_snapshot`` (whole document, every overlay assembled).

Milliseconds per call: one sample for the first publish, the median (and max) of
``--repeat`` samples otherwise. Run:
``.venv/bin/python -m benchmarks.bench_store_overlays --tenants 100000 sqlite postgres redis``.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from benchmarks._snapshots import fleet_document, fleet_registry
from flagmw.core.snapshot import validate_document
from flagmw.stores.base import Store


def _open(kind: str, tmp: str) -> tuple[Store, Callable[[], None]]:
    if kind == "sqlite":
        from flagmw.stores.sqlite import SQLiteStore

        s = SQLiteStore(os.path.join(tmp, f"bench-{uuid.uuid4().hex[:8]}.db"), create=True)
        return s, s.close
    if kind == "postgres":
        import psycopg

        from flagmw.stores.postgres import PostgresStore

        url = os.environ["FLAGMW_TEST_POSTGRES_URL"]
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        pg = PostgresStore(url, schema=schema, create=True)

        def drop() -> None:
            pg.close()
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')

        return pg, drop
    if kind == "redis":
        import redis

        from flagmw.stores.redis import RedisStore

        url = os.environ["FLAGMW_TEST_REDIS_URL"]
        prefix = f"flagmw-bench:{uuid.uuid4().hex[:12]}:"
        rs = RedisStore(url, prefix=prefix, create=True)

        def delete() -> None:
            rs.close()
            with redis.Redis.from_url(url) as r:
                keys = list(r.scan_iter(match=prefix + "*", count=10_000))
                for i in range(0, len(keys), 10_000):
                    r.delete(*keys[i : i + 10_000])

        return rs, delete
    raise SystemExit(f"unknown store {kind!r}: sqlite, postgres or redis")


def _time(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(kind: str, tenants: int, repeat: int, tmp: str) -> list[tuple[str, float, float]]:
    """``(operation, median s, max s)`` rows for one store."""
    registry = fleet_registry()
    reg_doc, fingerprint = registry.to_dict(), registry.fingerprint
    snaps = [validate_document(fleet_document(tenants, generation=g), registry) for g in (0, 1)]
    store, cleanup = _open(kind, tmp)
    rows: list[tuple[str, float, float]] = []
    try:

        def publish(i: int) -> None:
            snap = snaps[i % 2]
            store.publish(
                snap.document,
                reg_doc,
                content_hash=snap.content_hash,
                registry_fingerprint=fingerprint,
                parent_rev=(store.head().rev if store.head() else None),  # type: ignore[union-attr]
                author="bench",
                message=f"whole {i}",
                at=time.time(),
                overlay_texts=snap.overlay_texts,  # as FlagClient.publish passes them
            )

        first = _time(lambda: publish(0))
        rows.append(("publish whole (first)", first, first))
        samples = [_time(lambda i=i: publish(i)) for i in range(1, 1 + max(1, repeat // 4))]
        rows.append(("publish whole (1 global change)", statistics.median(samples), max(samples)))

        name = f"t-{tenants // 2:06d}"
        base = copy.deepcopy(dict(snaps[0].document["tenants"][name]))

        def patch(i: int) -> None:
            overlay = copy.deepcopy(base)
            overlay["values"]["limits.tokens"] = 1_000 + i
            head = store.head()
            assert head is not None
            store.publish_overlays(
                {("tenants", name): overlay},
                reg_doc,
                registry_fingerprint=fingerprint,
                parent_rev=head.rev,
                author="bench",
                message=f"one tenant {i}",
                at=time.time(),
            )

        samples = [_time(lambda i=i: patch(i)) for i in range(repeat)]
        rows.append(("publish_overlays (1 tenant)", statistics.median(samples), max(samples)))
        head = store.head()
        assert head is not None
        got = store.get_overlays(head.rev, [("tenants", name)])
        assert got[("tenants", name)]["values"]["limits.tokens"] == 1_000 + repeat - 1
        for label, fn in (
            ("get_overlays (1 tenant)", lambda: store.get_overlays(head.rev, [("tenants", name)])),
            ("get_snapshot(overlays=False)", lambda: store.get_snapshot(overlays=False)),
            ("changed_overlays (last rev)", lambda: store.changed_overlays(head.rev - 1, head.rev)),
        ):
            samples = [_time(fn) for _ in range(repeat)]
            rows.append((label, statistics.median(samples), max(samples)))
        samples = [_time(store.get_snapshot) for _ in range(max(1, repeat // 10))]
        rows.append(("get_snapshot (whole)", statistics.median(samples), max(samples)))
    finally:
        cleanup()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stores", nargs="+", choices=["sqlite", "postgres", "redis"])
    parser.add_argument("--tenants", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--tmp", default="/tmp")
    args = parser.parse_args()
    results = {kind: run(kind, args.tenants, args.repeat, args.tmp) for kind in args.stores}
    ops = [op for op, _, _ in next(iter(results.values()))]
    print(f"{args.tenants} tenants; ms per call, median (max) of up to {args.repeat} samples\n")
    print("| operation | " + " | ".join(args.stores) + " |")
    print("|---|" + "---|" * len(args.stores))
    for i, op in enumerate(ops):
        rows = [results[k][i] for k in args.stores]
        cells = [f"{1e3 * median:.1f} ({1e3 * worst:.1f})" for _, median, worst in rows]
        print(f"| {op} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
