"""Snapshots that scale (issue 8 §3): a 100k-tenant snapshot published whole and one
tenant at a time, loaded by a worker, and the worker's memory.

    .venv/bin/python -m benchmarks.bench_scale                       # SQLite, 100k tenants
    .venv/bin/python -m benchmarks.bench_scale --store all --rounds 20 --json out.json
    .venv/bin/python -m benchmarks.bench_scale --tenants 10000 --check

Targets (issue 8 §3, 100k tenants): publish of a one-tenant change ≤ 100 ms; publish
of the whole document ≤ 2 s; no step boundary (``client.poll()`` after a publish) and
no resolve (the first one of a tenant never touched) pays more than 5 ms for loading;
a worker's memory for the snapshot ≤ +30 MB with 10k tenants touched.

The writer is a :class:`~flagmw.FlagClient` on its own store object (what ``flagmw
publish`` does: load, validate, write); the worker another client on another store
object of the same store, as in another process. Each publish is followed by the
worker's ``poll()`` (a step boundary: it sees the change and loads the new rev; with
PostgreSQL and Redis repeated every millisecond until the notification has arrived —
each timed — and usually the listener thread has loaded it already) and a
``resolve`` of a tenant it never touched (the lazy read of that tenant's overlay). The
memory figure comes from a fresh interpreter per variant (``VmRSS`` before the client
is built and after 10k tenants resolved), side by side with the same snapshot loaded
whole (``get_snapshot`` and the overlays compiled as before issue 8 §3) for scale.
PostgreSQL and Redis (``--store``) use ``FLAGMW_TEST_POSTGRES_URL`` /
``FLAGMW_TEST_REDIS_URL`` and a private schema / key prefix they remove.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._snapshots import fleet_document, fleet_registry
from benchmarks._timing import machine_info

TARGETS = {
    "publish one tenant (s)": 0.100,
    "publish whole (s)": 2.0,
    "poll after a publish (s)": 0.005,
    "first resolve of a tenant (s)": 0.005,
    "worker memory (MB)": 30.0,
}

URLS = {
    "postgres": ("FLAGMW_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    "redis": ("FLAGMW_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
}

MEMORY = r"""
import json, sys, time
from benchmarks._snapshots import fleet_registry
from flagmw import EvaluationContext, FlagClient
from flagmw.core.compiled import CompiledSnapshot
from flagmw.core.snapshot import Snapshot
from flagmw.stores.url import open_store

def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

spec, mode, touch, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
registry = fleet_registry()
store = open_store(spec)
# spread over the fleet (9973 is prime, so `touch` distinct tenants of every shape)
ctxs = [EvaluationContext(tenant_id=f"t-{(i * 9973) % n:06d}", user_id="u") for i in range(touch)]
before = rss_mb()
t0 = time.perf_counter()
if mode == "lazy":
    client = FlagClient(registry, store, environment="production")
    resolve = client.resolve
    loaded = time.perf_counter() - t0
else:  # the whole document, as a client loaded it before issue 8 §3
    record = store.get_snapshot()
    compiled = CompiledSnapshot(registry, Snapshot(record.document, record.info.content_hash),
                                record.info.rev)
    view = compiled.view("production")
    from flagmw.core.resolve import resolve as _resolve
    resolve = lambda ctx: _resolve(view, None, ctx, time.time())
    loaded = time.perf_counter() - t0
for ctx in ctxs:
    resolve(ctx)
after = rss_mb()
print(json.dumps({"mode": mode, "rss_before_mb": before, "rss_after_mb": after,
                  "delta_mb": after - before, "load_s": loaded, "touched": len(ctxs)}))
"""


def _open(kind: str, tmp: Path) -> tuple[str, Callable[[], None]]:
    """A store spec for ``kind`` (created) and its clean-up."""
    from flagmw.stores.url import open_store

    if kind == "sqlite":
        path = tmp / "flagmw.db"
        open_store(f"sqlite:{path}", create=True).close()
        return f"sqlite:{path}", lambda: None
    env, default = URLS[kind]
    url = os.environ.get(env, default)
    tag = uuid.uuid4().hex[:12]
    if kind == "postgres":
        spec = f"{url}?schema=bench_{tag}"
    else:
        spec = f"{url}?prefix=flagmw-bench:{tag}:"
    open_store(spec, create=True).close()

    def drop() -> None:
        if kind == "postgres":
            import psycopg

            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS bench_{tag} CASCADE")
        else:
            import redis

            r = redis.Redis.from_url(url)
            keys = list(r.scan_iter(match=f"flagmw-bench:{tag}:*", count=10_000))
            for i in range(0, len(keys), 10_000):
                r.delete(*keys[i : i + 10_000])

    return spec, drop


def _stats(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {
        "n": len(s),
        "median": statistics.median(s),
        "p90": s[min(len(s) - 1, int(0.9 * len(s)))],
        "max": s[-1],
    }


def _boundaries(worker: Any, rev: int | None, polls: list[float]) -> None:
    """Step boundaries of the worker until it serves ``rev`` (a pushing store's change
    arrives by notification, possibly a moment after the publish returned), each timed."""
    deadline = time.monotonic() + 10.0
    while True:
        t0 = time.perf_counter()
        worker.poll()
        polls.append(time.perf_counter() - t0)
        if worker.snapshot_rev == rev:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the worker never served rev {rev}")
        time.sleep(0.001)


def run(kind: str, tenants: int, rounds: int) -> dict[str, Any]:
    from flagmw import EvaluationContext, FlagClient
    from flagmw.stores.url import open_store

    registry = fleet_registry()
    out: dict[str, Any] = {"store": kind, "tenants": tenants}
    with tempfile.TemporaryDirectory() as tmp:
        spec, drop = _open(kind, Path(tmp))
        try:
            writer = FlagClient(registry, open_store(spec), environment="production")
            doc = fleet_document(tenants)
            t0 = time.perf_counter()
            writer.publish(doc, author="bench", message="fleet")
            out["publish whole, first (s)"] = time.perf_counter() - t0
            worker = FlagClient(registry, open_store(spec), environment="production")
            ctx0 = EvaluationContext(tenant_id="t-000001", user_id="u")
            worker.resolve(ctx0)
            whole, polls, firsts, patches = [], [], [], []
            for r in range(max(1, rounds // 4)):
                doc = fleet_document(tenants, generation=r + 1)  # one global value differs
                t0 = time.perf_counter()
                writer.publish(doc, author="bench", message=f"global {r}")
                whole.append(time.perf_counter() - t0)
                _boundaries(worker, writer.snapshot_rev, polls)
            for r in range(rounds):
                tenant = f"t-{(r * 7919) % tenants:06d}"
                overlay = {"values": {"model.primary": "gpt-4o", "limits.tokens": 1000 + r}}
                t0 = time.perf_counter()
                writer.publish_tenant(tenant, overlay, author="bench", message=f"{tenant}")
                patches.append(time.perf_counter() - t0)
                _boundaries(worker, writer.snapshot_rev, polls)
                fresh = EvaluationContext(tenant_id=f"t-{(r * 104729 + 3) % tenants:06d}")
                t0 = time.perf_counter()
                worker.resolve(fresh)
                firsts.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                got = worker.resolve(EvaluationContext(tenant_id=tenant))
                firsts.append(time.perf_counter() - t0)
                assert got["limits.tokens"] == 1000 + r, (tenant, got["limits.tokens"])
            out["publish whole (s)"] = _stats(whole)
            out["publish one tenant (s)"] = _stats(patches)
            out["poll after a publish (s)"] = _stats(polls)
            out["first resolve of a tenant (s)"] = _stats(firsts)
            for mode in ("lazy", "whole"):
                proc = subprocess.run(
                    [sys.executable, "-c", MEMORY, spec, mode, "10000", str(tenants)],
                    capture_output=True,
                    text=True,
                    check=True,
                    cwd=Path(__file__).resolve().parent.parent,
                )
                out[f"memory, {mode}"] = json.loads(proc.stdout)
            out["worker memory (MB)"] = out["memory, lazy"]["delta_mb"]
        finally:
            drop()
    return out


def _table(results: list[dict[str, Any]]) -> str:
    rows = [
        "| store | measure | median | p90 | max | target | verdict |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for res in results:
        for name, target in TARGETS.items():
            value = res[name]
            if isinstance(value, dict):
                med, p90, mx = value["median"], value["p90"], value["max"]
                worst = mx if "resolve" in name or "poll" in name else med
            else:
                med = p90 = mx = worst = value
            seconds = "(s)" in name

            def fmt(v: float, seconds: bool = seconds) -> str:
                return f"{v * 1000:.2f} ms" if seconds else f"{v:.1f}"

            verdict = "ok" if worst <= target else "MISSED"
            rows.append(
                f"| {res['store']} | {name} | {fmt(med)} | {fmt(p90)} | {fmt(mx)} | "
                f"{fmt(target)} | {verdict} |"
            )
        rows.append(
            f"| {res['store']} | publish whole, first (s) | "
            f"{res['publish whole, first (s)'] * 1000:.0f} ms | | | | |"
        )
        for mode in ("lazy", "whole"):
            m = res[f"memory, {mode}"]
            rows.append(
                f"| {res['store']} | memory, {mode} load (+MB, load s) | {m['delta_mb']:.1f} | "
                f"{m['load_s']:.3f} s | | | |"
            )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=("sqlite", "postgres", "redis", "all"), default="sqlite")
    parser.add_argument("--tenants", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    kinds = ["sqlite", "postgres", "redis"] if args.store == "all" else [args.store]
    results = [run(kind, args.tenants, args.rounds) for kind in kinds]
    print(f"{args.tenants} tenants, {args.rounds} rounds; {machine_info()['cpu']}")
    table = _table(results)
    print(table)
    if args.json:
        args.json.write_text(json.dumps({"results": results, "machine": machine_info()}, indent=1))
    if args.check and "MISSED" in table:
        sys.exit(1)


if __name__ == "__main__":
    main()
