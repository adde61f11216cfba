"""The operator console's speed (issue 11 §5), against ``uvicorn`` on 127.0.0.1 and a real
SQLite store, read from the ``Server-Timing: app;dur=…`` header the console sets on every
response (request in → response headers out; the network and the client are excluded):

1. ``GET /api/v1/admin/feature-flags`` for 50 flags (the fleet registry of
   ``benchmarks/_snapshots.py``, 1,000 tenants): p50 ≤ 2 ms server time;
2. a kill through the API and one through the CLI, each seen by a worker's
   ``client.poll()`` (a thread with its own store object and FlagClient, checking the
   change token every 0.1 ms): the time from the write returning (HTTP response / CLI
   exit) to the worker serving it, side by side — negative when the worker served it
   before the writer had its answer (the CLI process spends ~0.2 s exiting) — and from
   the start of the write (``*_total``: the CLI pays its start-up);
3. the dashboard's pages with 1,000 flags and 10,000 tenants: ≤ 100 ms server time.

    .venv/bin/python -m benchmarks.bench_console [--n 200] [--json out.json] [--check]

Medians and p90/p99 over ``--n`` requests after 20 warm-up requests; one process for the
server (uvicorn in a thread of this process, so the figures include GIL contention with
the client; a separate process would be faster).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from benchmarks._snapshots import fleet_document, fleet_registry
from benchmarks._timing import machine_info, percentile
from flagmw import FlagClient, FlagRegistry, SQLiteStore
from flagmw.console import create_app
from flagmw.core.flag import Flag
from flagmw.stores.tokens import hash_secret, new_secret, token_store

_SCRIPT = shutil.which("flagmw", path=str(Path(sys.executable).parent))
CLI = [_SCRIPT] if _SCRIPT else [sys.executable, "-m", "flagmw.cli"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """uvicorn serving the console on ``store`` in a thread."""

    def __init__(self, store: SQLiteStore, registry: FlagRegistry) -> None:
        self.port = _port()
        config = uvicorn.Config(
            create_app(store, registry), host="127.0.0.1", port=self.port, log_level="error"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def _server_ms(resp: httpx.Response) -> float:
    timing = resp.headers["server-timing"]
    return float(timing.split("dur=")[1])


def _stats(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {
        "p50": percentile(s, 0.5),
        "p90": percentile(s, 0.9),
        "p99": percentile(s, 0.99),
        "n": len(s),
    }


def _timed(http: httpx.Client, path: str, headers: dict[str, str], n: int) -> dict[str, float]:
    for _ in range(20):
        http.get(path, headers=headers).raise_for_status()
    samples = []
    for _ in range(n):
        r = http.get(path, headers=headers)
        r.raise_for_status()
        samples.append(_server_ms(r))
    return _stats(samples)


def _token(store: SQLiteStore, role: str) -> dict[str, str]:
    secret = new_secret()
    token_store(store).add_token(hash_secret(secret) or "", role, role, actor="bench", at=0)
    return {"Authorization": f"Bearer {secret}"}


def bench_feature_flags(work: Path, n: int) -> dict[str, Any]:
    registry = fleet_registry()
    db = work / "flags50.db"
    store = SQLiteStore(db, create=True)
    FlagClient(registry, store).publish(fleet_document(1000), author="bench", message="fleet")
    auth = _token(store, "viewer")
    server = Server(store, registry)
    try:
        with httpx.Client(base_url=server.url) as http:
            plain = _timed(http, "/api/v1/admin/feature-flags", auth, n)
            tenant = _timed(http, "/api/v1/admin/feature-flags?tenant=t-000500", auth, n)
            rich = _timed(http, "/api/v1/flags?tenant=t-000500", auth, n)
    finally:
        server.stop()
        store.close()
    return {"feature_flags": plain, "feature_flags_tenant": tenant, "flags_rich_tenant": rich}


def _worker_sees(
    db: Path, registry: FlagRegistry, key: str, stop: threading.Event, seen: dict[str, float]
) -> None:
    store = SQLiteStore(db)
    client = FlagClient(registry, store)
    try:
        while not stop.is_set():
            client.poll()
            if not client.is_enabled(key):
                seen[key] = time.monotonic()
                return
            time.sleep(0.0001)
    finally:
        store.close()


def bench_kill_visibility(work: Path, rounds: int) -> dict[str, Any]:
    registry = fleet_registry()
    db = work / "kill.db"
    store = SQLiteStore(db, create=True)
    FlagClient(registry, store).publish(fleet_document(100), author="bench", message="fleet")
    auth = _token(store, "operator")
    server = Server(store, registry)
    keys = [f"tools.tool_{i:02d}.enabled" for i in range(14) if i % 3 != 0]  # default on
    out: dict[str, list[float]] = {"api": [], "cli": [], "api_total": [], "cli_total": []}
    try:
        with httpx.Client(base_url=server.url) as http:
            for r in range(rounds):
                for how in ("api", "cli"):
                    key = keys[(2 * r + (how == "cli")) % len(keys)]
                    stop, seen = threading.Event(), {}
                    t = threading.Thread(target=_worker_sees, args=(db, registry, key, stop, seen))
                    t.start()
                    time.sleep(0.05)
                    t0 = time.monotonic()
                    if how == "api":
                        resp = http.post(
                            "/api/v1/overrides",
                            json={"key": key, "reason": "bench", "ttl": "5m"},
                            headers=auth,
                        )
                        resp.raise_for_status()
                        oid = resp.json()["id"]
                    else:
                        done = subprocess.run(
                            [
                                *CLI,
                                "--store",
                                str(db),
                                "--json",
                                "kill",
                                key,
                                "--reason",
                                "bench",
                                "--ttl",
                                "5m",
                            ],
                            capture_output=True,
                            text=True,
                            check=True,
                        )
                        oid = json.loads(done.stdout)["id"]
                    t1 = time.monotonic()
                    t.join(10)
                    stop.set()
                    out[how].append((seen[key] - t1) * 1000)
                    out[f"{how}_total"].append((seen[key] - t0) * 1000)
                    FlagClient(registry, store).end_override(oid, actor="bench", reason="reset")
    finally:
        server.stop()
        store.close()
    return {k: _stats(v) for k, v in out.items()}


def big_registry(n: int = 1000) -> FlagRegistry:
    flags = []
    for i in range(n):
        if i % 2 == 0:
            flags.append(
                Flag(
                    f"tools.t{i:04d}.enabled",
                    "bool",
                    True,
                    binding="hot",
                    owner=f"team-{i % 7}",
                    tags=(f"area-{i % 5}",),
                    description=f"Tool {i}",
                )
            )
        else:
            flags.append(
                Flag(
                    f"limits.l{i:04d}",
                    "int",
                    i,
                    min=0,
                    max=100_000,
                    owner=f"team-{i % 7}",
                    description=f"Limit {i}",
                )
            )
    return FlagRegistry(flags)


def big_document(tenants: int) -> dict[str, Any]:
    tdocs = {
        f"t-{i:05d}": {
            "values": {"limits.l0001": i % 1000, f"tools.t{(i % 500) * 2:04d}.enabled": bool(i % 2)}
        }
        for i in range(tenants)
    }
    return {
        "values": {"limits.l0003": 7},
        "tenants": tdocs,
        "routes": {"refund-assistant": {"values": {"limits.l0005": 3}}},
    }


def bench_pages(work: Path, n: int) -> dict[str, Any]:
    registry = big_registry()
    db = work / "pages.db"
    store = SQLiteStore(db, create=True)
    client = FlagClient(registry, store)
    client.publish(big_document(10_000), author="bench", message="big")
    doc2 = big_document(10_000)
    doc2["tenants"]["t-00042"]["values"]["limits.l0001"] = 999
    client.publish(doc2, author="bench", message="big 2")
    for i in range(20):
        client.kill(f"tools.t{i * 2:04d}.enabled", reason="bench", actor="bench", ttl="1h")
    secret = new_secret()
    token_store(store).add_token(hash_secret(secret) or "", "op", "operator", actor="b", at=0)
    server = Server(store, registry)
    out = {}
    try:
        with httpx.Client(base_url=server.url, follow_redirects=False) as http:
            r = http.post("/login", data={"token": secret})
            assert r.status_code == 303, r.text
            for name, path in (
                ("flags", "/ui/flags?tenant=t-04242"),
                ("flags search", "/ui/flags?q=t0100&tag=area-0"),
                ("kills", "/ui/kills"),
                ("overrides", "/ui/overrides"),
                ("tenant + diff", "/ui/tenants?tenant=t-00042&a=1&b=2"),
                ("history", "/ui/history?a=1&b=2"),
                ("audit", "/ui/audit"),
            ):
                out[name] = _timed(http, path, {}, n)
    finally:
        server.stop()
        store.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200, help="timed requests per figure")
    ap.add_argument("--rounds", type=int, default=15, help="kills per way (API, CLI)")
    ap.add_argument("--json", help="write the figures to this file")
    ap.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = ap.parse_args()
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        res = {
            "machine": machine_info(),
            "feature_flags": bench_feature_flags(work, args.n),
            "kill_visibility_ms": bench_kill_visibility(work, args.rounds),
            "pages_ms": bench_pages(work, max(20, args.n // 4)),
        }
    ff = res["feature_flags"]
    print("GET /api/v1/admin/feature-flags, 50 flags, server ms (p50 / p90 / p99):")
    for name, s in ff.items():
        print(f"  {name:22s} {s['p50']:.3f} / {s['p90']:.3f} / {s['p99']:.3f}")
    print("kill → worker's client.poll() serves it, ms after the write returned (p50 / p90):")
    kv = res["kill_visibility_ms"]
    for name, s in kv.items():
        print(f"  {name:22s} {s['p50']:.2f} / {s['p90']:.2f}")
    print("dashboard pages, 1,000 flags, 10,000 tenants, server ms (p50 / p90 / p99):")
    for name, s in res["pages_ms"].items():
        print(f"  {name:22s} {s['p50']:.2f} / {s['p90']:.2f} / {s['p99']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2), encoding="utf-8")
    missed = []
    if ff["feature_flags"]["p50"] > 2.0:
        missed.append("feature-flags p50 > 2 ms")
    if any(s["p50"] > 100 for s in res["pages_ms"].values()):
        missed.append("a page p50 > 100 ms")
    # seen − returned ≤ 0: the worker served the kill by the time the writer had its answer
    if kv["api"]["p50"] > max(kv["cli"]["p50"], 0.0) + 5:
        missed.append("an API kill reaches a worker slower than a CLI kill")
    for m in missed:
        print("MISSED:", m)
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
