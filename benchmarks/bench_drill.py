"""``flagmw drill`` as a benchmark (issue 8 §4): the same drill on every store this
machine can reach — a SQLite file, and PostgreSQL / Redis when ``FLAGMW_TEST_POSTGRES_URL``
/ ``FLAGMW_TEST_REDIS_URL`` are set (a private schema / key prefix, removed afterwards) —
side by side in one run.

    .venv/bin/python -m benchmarks.bench_drill [--workers 4] [--repetitions 20]

Reported per store: commit → client knows p50 / p99 (targets: p99 ≤ 20 ms for PostgreSQL
and Redis, ≤ 50 ms for SQLite), commit → every worker enforced p50 / max, the step
spacing beside it (enforcement is bounded by it), and tool executions after enforcement
(must be 0).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks._timing import machine_info
from flagmw import FlagClient, FlagRegistry
from flagmw.drill import run_drill
from flagmw.stores.url import open_store

FLAGS = {
    "tools.refund_api.enabled": {"type": "bool", "default": True, "binding": "hot", "owner": "b"},
}
TARGET_MS = {"sqlite": 50.0, "postgres": 20.0, "redis": 20.0}


def _seed(spec: str) -> None:
    store = open_store(spec, create=True)
    try:
        FlagClient(FlagRegistry.from_dict({"flags": FLAGS}), store).publish(
            {}, author="bench", message="drill"
        )
    finally:
        store.close()


@contextmanager
def _sqlite() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        spec = str(Path(tmp) / "flagmw.db")
        _seed(spec)
        yield spec


@contextmanager
def _postgres(url: str) -> Iterator[str]:
    import psycopg

    schema = f"drill_{uuid.uuid4().hex[:12]}"
    spec = f"{url}{'&' if '?' in url else '?'}schema={schema}"
    _seed(spec)
    try:
        yield spec
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@contextmanager
def _redis(url: str) -> Iterator[str]:
    import redis

    prefix = f"flagmw:drill{uuid.uuid4().hex[:12]}:"
    spec = f"{url}{'&' if '?' in url else '?'}prefix={prefix}"
    _seed(spec)
    try:
        yield spec
    finally:
        r = redis.Redis.from_url(url)
        for key in r.scan_iter(f"{prefix}*"):
            r.delete(key)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--repetitions", type=int, default=20)
    parser.add_argument("--tool-latency", type=float, default=0.001)
    opts = parser.parse_args(argv)
    kinds: list[tuple[str, Callable[[], object]]] = [("sqlite", _sqlite)]
    if os.environ.get("FLAGMW_TEST_POSTGRES_URL"):
        kinds.append(("postgres", lambda: _postgres(os.environ["FLAGMW_TEST_POSTGRES_URL"])))
    if os.environ.get("FLAGMW_TEST_REDIS_URL"):
        kinds.append(("redis", lambda: _redis(os.environ["FLAGMW_TEST_REDIS_URL"])))
    print(
        "| store | knows p50 | knows p99 | target | every worker enforced p50 / max "
        "| step spacing | tools after enforcement |"
    )
    print("|---|---:|---:|---|---:|---:|---:|")
    failed = False
    for name, make in kinds:
        with make() as spec:  # type: ignore[attr-defined]
            report = run_drill(
                spec,
                workers=opts.workers,
                repetitions=opts.repetitions,
                tool_latency=opts.tool_latency,
            )
        d = report.to_dict()
        knows = [float(w["knows_ms"]) for r in report.repetitions for w in r.workers]
        knows.sort()
        p50 = knows[len(knows) // 2]
        ok = d["knows_p99_ms"] <= TARGET_MS[name] and d["executions_after_enforcement"] == 0
        failed = failed or not ok
        print(
            f"| {name} | {p50:.1f} ms | {d['knows_p99_ms']:.1f} ms | ≤ {TARGET_MS[name]:g} ms "
            f"{'PASS' if ok else 'MISS'} | {d['all_enforced_p50_ms']:.1f} / "
            f"{d['all_enforced_max_ms']:.1f} ms | {d['step_spacing_ms_median']:.1f} ms | "
            f"{d['executions_after_enforcement']} |"
        )
    info = machine_info()
    print(
        f"\n{opts.workers} workers x {opts.repetitions} kills per store, tool latency "
        f"{opts.tool_latency * 1000:g} ms. {info['date']}, {info['cpu']} x{info['cores']}, "
        f"load {info['loadavg'][0]:.2f}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
