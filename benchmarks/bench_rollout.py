"""The issue-12 speed targets at run start, measured side by side.

    .venv/bin/python -m benchmarks.bench_rollout            # N = 100 000
    .venv/bin/python -m benchmarks.bench_rollout --quick    # N = 10 000

Targets (issue 12, "Cost at run start"):

* version assignment (``RolloutRuntime.assign``: the agent's rollout, one murmur3 bucket,
  the context rebuilt with the version attributes): ≤ 10 µs;
* outcome recording at run start and end (``OutcomeRecorder.run_started`` +
  ``run_ended``: the accumulator, the record built and buffered; the store write is on
  the background flusher): ≤ 20 µs per run.

Config canaries (issue 12 §3) are assigned by the same runtime: ``RolloutRuntime.assign``
on a client whose head is a canary rev (the canary's rollout, one murmur3 bucket, the
context rebuilt with ``flagmw.config_rev`` and the rollout attributes): ≤ 10 µs, and
``client.resolve(ctx)`` with the canary's view picked for its candidates.

Side by side, to show what the ``version`` layer costs everyone else:
``client.resolve(ctx)`` without a rollout runtime, with one (the candidate's values
applied), and ``client.is_enabled`` on a context without a version (the layer's decider
returns at its first check).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from benchmarks._timing import markdown_table, measure, timer_overhead_ns
from flagmw import EvaluationContext, FlagClient, FlagRegistry, MemoryStore
from flagmw.langgraph.run import RunState
from flagmw.rollout.controller import RolloutController
from flagmw.rollout.outcomes import OutcomeRecorder
from flagmw.rollout.runtime import attach
from flagmw.rollout.store import open_rollout_store
from flagmw.rollout.versions import AgentVersion

REGISTRY = {
    "flags": {
        **{f"policy.p{i}": {"type": "int", "default": i, "min": 0, "max": 1000} for i in range(45)},
        "model.primary": {"type": "enum", "choices": ["big", "small"], "default": "big"},
        "loop.max_iterations": {"type": "int", "default": 8, "min": 1, "max": 50},
        "tools.refund_api.enabled": {"type": "bool", "default": True},
        "prompt.version": {"type": "string", "default": "p1"},
        "cost.max_usd": {"type": "float", "default": 1.0, "min": 0, "max": 100},
    }
}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="N = 10 000")
    args = ap.parse_args(argv)
    n = 10_000 if args.quick else 100_000
    overhead = timer_overhead_ns()

    registry = FlagRegistry.from_dict(REGISTRY)
    client = FlagClient(registry, MemoryStore())
    client.publish({"values": {"policy.p1": 7}}, author="bench", message="m")
    rs = open_rollout_store(client.store)
    for version, model in (("v1", "big"), ("v2", "small")):
        v = AgentVersion.build(
            registry,
            "support-agent",
            version,
            {"model.primary": model, "loop.max_iterations": 6, "prompt.version": version},
        )
        rs.publish_version(v, author="bench", at=0.0)
    contexts = [
        EvaluationContext(tenant_id=f"tenant-{i}", user_id=f"u-{i}", route="support-agent")
        for i in range(1000)
    ]
    plain = FlagClient(registry, client.store)  # no runtime attached
    from flagmw.core.compiled import CompiledSnapshot
    from flagmw.core.resolve import resolve_key
    from flagmw.core.snapshot import Snapshot

    record = client.store.get_snapshot()
    snap = Snapshot(record.document, record.info.content_hash)
    rev = record.info.rev
    bare = CompiledSnapshot(registry, snap, rev, {}, None).view("production")
    layered = CompiledSnapshot(registry, snap, rev, {}, client.versions).view("production")
    key = "tools.refund_api.enabled"
    rows = [
        measure(
            "layer",
            "resolve_key, view without a version layer",
            lambda c: resolve_key(bare, None, key, c, 0.0),
            contexts,
            n=n,
            overhead_ns=overhead,
        ),
        measure(
            "layer",
            "resolve_key, view with the version layer (no version)",
            lambda c: resolve_key(layered, None, key, c, 0.0),
            contexts,
            n=n,
            overhead_ns=overhead,
        ),
        measure(
            "resolve",
            "client.resolve(ctx), no rollout runtime",
            plain.resolve,
            contexts,
            n=n,
            overhead_ns=overhead,
        ),
        measure(
            "eval",
            "client.is_enabled(key, ctx), no version on the context",
            lambda c: plain.is_enabled("tools.refund_api.enabled", c),
            contexts,
            n=n,
            overhead_ns=overhead,
        ),
    ]
    RolloutController(rs, clock=lambda: 0.0).start(
        "support-agent", "v2", "v1", "25,100", unit="tenant", actor="bench"
    )
    rt = attach(client, rs, background=False)
    rows += [
        measure(
            "assign",
            "RolloutRuntime.assign(ctx) (25 % of tenants)",
            rt.assign,
            contexts,
            n=n,
            overhead_ns=overhead,
            target_ns=10_000,
        ),
        measure(
            "resolve",
            "client.resolve(ctx), rollout runtime attached",
            client.resolve,
            contexts,
            n=n,
            overhead_ns=overhead,
        ),
        measure(
            "eval",
            "client.is_enabled(key, ctx), versioned context",
            lambda c: client.is_enabled("tools.refund_api.enabled", c),
            [rt.assign(c) for c in contexts],
            n=n,
            overhead_ns=overhead,
        ),
    ]
    rec = OutcomeRecorder(rs, flush_interval=3600, max_buffer=10 * n, meter_provider=False)
    runs = [
        RunState(client=client, rc=client.resolve(c), name="support-agent", thread_id=f"t-{i}")
        for i, c in enumerate(contexts)
    ]

    def record(run: RunState) -> None:
        rec.run_started(run)
        rec.run_ended(run, "completed", None)

    rows.append(
        measure(
            "record",
            "OutcomeRecorder.run_started + run_ended (buffered)",
            record,
            runs,
            n=n,
            overhead_ns=overhead,
            target_ns=20_000,
            warmup=1_000,
        ),
    )
    rec._buffer.clear()  # not the subject here: the flusher's store write
    rec.close()
    rt.close()
    rows += _canary_rows(registry, contexts, n, overhead)
    print(markdown_table(rows))
    print(f"\ntimer overhead {overhead} ns; Python {sys.version.split()[0]}")
    return 0 if all(r.verdict.startswith("PASS") or not r.target for r in rows) else 1


def _canary_rows(
    registry: FlagRegistry, contexts: list[EvaluationContext], n: int, overhead: int
) -> list[Any]:
    """A config canary at 25 % of tenants: assignment and resolution at run start."""
    from flagmw.rollout.canary import start_canary

    client = FlagClient(registry, MemoryStore())
    client.publish({"values": {"policy.p1": 7}}, author="bench", message="m")
    start_canary(client, {"values": {"policy.p1": 8}}, stages="25,100", author="bench", message="m")
    rt = attach(client, background=False)
    rows = [
        measure(
            "canary",
            "RolloutRuntime.assign(ctx), config canary (25 % of tenants)",
            rt.assign,
            contexts,
            n=n,
            overhead_ns=overhead,
            target_ns=10_000,
        ),
        measure(
            "canary",
            "client.resolve(ctx), config canary assigned",
            client.resolve,
            contexts,
            n=n,
            overhead_ns=overhead,
        ),
        measure(
            "canary",
            "client.is_enabled(key, ctx), canary head, context not assigned",
            lambda c: client.is_enabled("tools.refund_api.enabled", c),
            contexts,
            n=n,
            overhead_ns=overhead,
        ),
    ]
    rt.close()
    return rows


if __name__ == "__main__":
    sys.exit(main())
