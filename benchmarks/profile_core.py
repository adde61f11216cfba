"""Where the time goes: cProfile of the paths ``bench_core`` times, for reading, not timing.

    .venv/bin/python -m benchmarks.profile_core                    # every scenario
    .venv/bin/python -m benchmarks.profile_core cold refresh --tenants 20000 --top 15

Scenarios (the fleet workload of ``_snapshots.py``):

* ``eval``    — 100 000 × ``client.is_enabled`` of the peer benchmark's flag (SQLite store);
* ``warm``    — 50 000 × ``client.resolve(ctx)`` + ``config_hash``, tenants already compiled;
* ``cold``    — ``client.resolve(ctx)`` for tenants never resolved before (first touch);
* ``resume``  — ``RunConfig.from_json`` of 50-flag RunConfigs;
* ``refresh`` — a reader's first ``poll()`` after another client published the snapshot;
* ``publish`` — ``client.publish`` of the snapshot (validation, hash, write).

cProfile adds overhead to every Python call, so read the shares, not the absolute times
(those are ``bench_core``'s job).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks._snapshots import (
    PLANNER_KEY,
    fleet_contexts,
    fleet_document,
    fleet_registry,
    planner_document,
    planner_registry,
    planner_users,
)
from flagmw import EvaluationContext, FlagClient, RunConfig, SQLiteStore

SCENARIOS = ("eval", "warm", "cold", "resume", "refresh", "publish")


def _profile(label: str, work: Callable[[], object], top: int) -> None:
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    work()
    prof.disable()
    print(f"\n## {label} — {time.perf_counter() - t0:.3f} s under the profiler\n", flush=True)
    pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(top)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("scenarios", nargs="*", metavar="SCENARIO", help=", ".join(SCENARIOS))
    ap.add_argument("--tenants", type=int, default=100_000, help="fleet snapshot size")
    ap.add_argument("--top", type=int, default=12, help="functions listed per scenario")
    args = ap.parse_args(argv)
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        ap.error(f"unknown scenario(s) {', '.join(sorted(unknown))}; pick from {SCENARIOS}")
    args.scenarios = args.scenarios or list(SCENARIOS)
    registry = fleet_registry()
    with tempfile.TemporaryDirectory(prefix="flagmw-profile-") as tmp:
        db = Path(tmp) / "fleet.db"
        writer = FlagClient(registry, SQLiteStore(db))
        reader = FlagClient(registry, SQLiteStore(db))
        document = fleet_document(args.tenants)
        if "publish" in args.scenarios:
            _profile(
                f"publish, {args.tenants:,} tenants",
                lambda: writer.publish(document, author="bench", message="profile"),
                args.top,
            )
        else:
            writer.publish(document, author="bench", message="profile")
        if "refresh" in args.scenarios:
            _profile(
                f"first poll after the publish, {args.tenants:,} tenants", reader.poll, args.top
            )
        else:
            reader.poll()
        if "cold" in args.scenarios:
            cold = [
                c._replace(tenant_id=f"t-{i:06d}")
                for i, c in enumerate(fleet_contexts(1, min(20_000, args.tenants)))
            ]
            _profile(
                f"{len(cold):,} cold resolves (first touch of each tenant)",
                lambda: [reader.resolve(c) for c in cold],
                args.top,
            )
        warm = fleet_contexts(args.tenants, 10_000, seed=3)
        for c in warm:
            reader.resolve(c)
        if "warm" in args.scenarios:
            _profile(
                "50,000 warm resolves + config_hash",
                lambda: [reader.resolve(c).config_hash for _ in range(5) for c in warm],
                args.top,
            )
        if "resume" in args.scenarios:
            texts = [reader.resolve(c).to_json() for c in warm[:1_000]]
            _profile(
                "5,000 × RunConfig.from_json (50 flags)",
                lambda: [RunConfig.from_json(t) for _ in range(5) for t in texts],
                args.top,
            )
        writer.close()
        reader.close()
    if "eval" in args.scenarios:
        with tempfile.TemporaryDirectory(prefix="flagmw-profile-") as tmp:
            client = FlagClient(planner_registry(), SQLiteStore(Path(tmp) / "eval.db"))
            client.publish(planner_document(), author="bench", message="profile")
            ctxs = [EvaluationContext(user_id=u, plan=p) for u, p in planner_users()]
            _profile(
                "100,000 × client.is_enabled (1 flag, SQLite store)",
                lambda: [client.is_enabled(PLANNER_KEY, c) for _ in range(10) for c in ctxs],
                args.top,
            )
            client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
