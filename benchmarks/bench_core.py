"""The issue-2 speed targets, measured.

    .venv/bin/python -m benchmarks.bench_core                 # every group, N = 100 000
    .venv/bin/python -m benchmarks.bench_core --quick         # N = 10 000, 1k / 10k tenants
    .venv/bin/python -m benchmarks.bench_core --json benchmarks/results/core.json
    .venv/bin/python -m benchmarks.bench_core --groups eval poll

Targets (issue 2, "Speed to design for"):

* one bool flag with one rule and a 25 % rollout, through ``client.is_enabled``: ≤ 2 µs;
* a full RunConfig of 50 flags from a snapshot with 100 000 tenants: ≤ 25 µs;
* the unchanged-check at a step boundary (``client.poll()``): < 0.5 µs.

Groups, each run in a fresh interpreter (``--worker``) so that one group's caches,
garbage and allocator state cannot colour the next:

* ``eval`` — the peer benchmark's flag (``_snapshots.planner_*``) on a ``SQLiteStore``
  (the real default) and a ``MemoryStore``: ``is_enabled``, ``value``, the resolver
  alone, and context construction + evaluation;
* ``poll`` — ``client.poll()`` and ``store.change_token()`` when nothing changed, and the
  first poll after a publish / a kill made by **another OS process** (the refresh);
* ``pinned`` — reading a pinned RunConfig (``rc[key]``), to set against the peer
  harness's "pinned snapshot read" floor;
* ``resolve-<T>`` for T in ``--tenants`` — the fleet workload (50 flags, T tenants):
  publish and client-refresh times (seconds), then ``client.resolve(ctx)`` with and
  without ``rc.config_hash``, cold (the tenant's overlay compiled on first touch) and
  warm, and single-flag evaluation in the big snapshot.

Per-call rows: nanoseconds; medians include the timer overhead (shown below the
table); the verdict is ``PASS`` when the median meets the target, ``PASS (net)`` when
only the median minus the timer overhead does.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from benchmarks._snapshots import (
    PLANNER_KEY,
    fleet_contexts,
    fleet_document,
    fleet_registry,
    planner_document,
    planner_registry,
    planner_users,
)
from benchmarks._timing import (
    REPO,
    Row,
    fmt_value,
    machine_info,
    markdown_table,
    measure,
    measure_seconds,
    timer_overhead_ns,
)
from flagmw import (
    EvaluationContext,
    FlagClient,
    MemoryStore,
    RunConfig,
    SQLiteStore,
    validate_document,
)
from flagmw.core.resolve import resolve_key

US = 1_000  # ns
TARGET_EVAL_NS = 2 * US
TARGET_RESOLVE_NS = 25 * US
TARGET_POLL_NS = 0.5 * US

GROUPS = ("eval", "poll", "pinned", "resolve")
WARM_RESOLVE = "client.resolve(ctx) — warm, without config_hash"


class Settings:
    """What a worker measures: ``n`` timed calls per row, ``warm_contexts`` distinct
    contexts for warm resolution, ``refresh_samples`` cross-process refreshes,
    ``publish_reps`` publishes of each fleet snapshot."""

    def __init__(self, n: int, quick: bool) -> None:
        self.n = n
        self.quick = quick
        self.warmup = min(5_000, n)
        self.warm_contexts = 2_000 if quick else 10_000
        self.cold_samples = 2_000 if quick else 20_000
        self.refresh_samples = 20 if quick else 100
        self.publish_reps = 1 if quick else 3


def _author(client: FlagClient, document: dict[str, Any], message: str) -> int:
    return client.publish(document, author="bench@flagmw", message=message).rev


# -- groups ------------------------------------------------------------------------------


def group_eval(s: Settings, workdir: Path) -> list[Row]:
    """``is_enabled`` / ``value`` of the one-flag workload, SQLite and memory stores."""
    registry = planner_registry()
    users = planner_users()
    ctxs = [EvaluationContext(user_id=u, plan=p) for u, p in users]
    overhead = timer_overhead_ns()
    rows: list[Row] = []
    sqlite_client = FlagClient(registry, SQLiteStore(workdir / "eval.db", create=True))
    _author(sqlite_client, planner_document(), "eval workload")
    memory_client = FlagClient(registry, MemoryStore())
    _author(memory_client, planner_document(), "eval workload")
    _check_planner(sqlite_client, users, ctxs)
    _check_planner(memory_client, users, ctxs)
    key = PLANNER_KEY
    for label, client in (("SQLiteStore", sqlite_client), ("MemoryStore", memory_client)):
        is_enabled = client.is_enabled
        value = client.value
        rows.append(
            measure(
                "eval",
                f"client.is_enabled(key, ctx) — {label}",
                lambda c, f=is_enabled: f(key, c),
                ctxs,
                n=s.n,
                warmup=s.warmup,
                target_ns=TARGET_EVAL_NS,
                overhead_ns=overhead,
                notes="1 flag: rule plan == enterprise, else 25 % sticky rollout on user_id",
            )
        )
        rows.append(
            measure(
                "eval",
                f"client.value(key, ctx) — {label}",
                lambda c, f=value: f(key, c),
                ctxs,
                n=s.n,
                warmup=s.warmup,
                overhead_ns=overhead,
            )
        )
    # where the time goes: the resolver alone (no poll, no client method)
    view = sqlite_client._view
    overrides = sqlite_client._overrides
    rows.append(
        measure(
            "eval",
            "resolver.resolve_key(view, overrides, key, ctx, 0) — no poll",
            lambda c: resolve_key(view, overrides, key, c, 0.0),
            ctxs,
            n=s.n,
            warmup=s.warmup,
            overhead_ns=overhead,
            notes="breakdown: the evaluation without the client's change check",
        )
    )
    is_enabled = sqlite_client.is_enabled
    rows.append(
        measure(
            "eval",
            "EvaluationContext(user_id, plan) + is_enabled — SQLiteStore",
            lambda up: is_enabled(key, EvaluationContext(user_id=up[0], plan=up[1])),
            users,
            n=s.n,
            warmup=s.warmup,
            overhead_ns=overhead,
            notes="context construction timed with the evaluation (harness 'ctx+eval')",
        )
    )
    sqlite_client.close()
    return rows


def _check_planner(
    client: FlagClient, users: Sequence[tuple[str, str]], ctxs: Sequence[EvaluationContext]
) -> None:
    """The peer harness's correctness gate: every enterprise user True, 25 % ± 3 points
    of the others."""
    ent_ok, hits, others = True, 0, 0
    for (_, plan), ctx in zip(users, ctxs, strict=True):
        v = client.is_enabled(PLANNER_KEY, ctx)
        if plan == "enterprise":
            ent_ok = ent_ok and v is True
        else:
            others += 1
            hits += v is True
    rate = hits / others
    if not ent_ok or abs(rate - 0.25) > 0.03:
        raise SystemExit(f"correctness gate failed: enterprise all true={ent_ok}, rate={rate:.3f}")


class _Publisher:
    """Another OS process that publishes snapshots and sets kills on a SQLite store on
    command (one line in, one line out), so the parent can time its first poll after a
    change it did not make itself."""

    def __init__(self, db: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.bench_core", "--publisher", str(db)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.ask("ping")

    def ask(self, command: str) -> str:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        if not answer.startswith("ok"):
            raise RuntimeError(f"publisher process: {command!r} → {answer!r}")
        return answer[3:]

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def publisher_main(db: str) -> None:
    """The ``--publisher`` process: ``publish N`` / ``kill`` / ``end ID`` / ``ping``."""
    client = FlagClient(planner_registry(), SQLiteStore(db))
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        try:
            if cmd == "ping":
                out = ""
            elif cmd == "publish":
                out = str(_author(client, planner_document(salt=f"salt-{arg}"), f"gen {arg}"))
            elif cmd == "kill":
                ov = client.kill(PLANNER_KEY, reason="bench kill", actor="bench", ttl="1h")
                out = ov.id
            elif cmd == "end":
                out = client.end_override(arg, actor="bench", reason="bench unkill").id
            else:
                raise ValueError(f"unknown command {cmd!r}")
            print("ok " + out, flush=True)
        except Exception as exc:  # report to the parent, which fails loudly
            print(f"error {type(exc).__name__}: {exc}", flush=True)
    client.close()


def group_poll(s: Settings, workdir: Path) -> list[Row]:
    """The unchanged-check, and the first poll after another process changed the store."""
    registry = planner_registry()
    overhead = timer_overhead_ns()
    db = workdir / "poll.db"
    client = FlagClient(registry, SQLiteStore(db, create=True))
    _author(client, planner_document(), "poll workload")
    memory_client = FlagClient(registry, MemoryStore())
    _author(memory_client, planner_document(), "poll workload")
    none = [None]
    rows = []
    for label, c in (("SQLiteStore", client), ("MemoryStore", memory_client)):
        poll = c.poll
        rows.append(
            measure(
                "poll",
                f"client.poll(), nothing changed — {label}",
                lambda _, f=poll: f(),
                none,
                n=s.n,
                warmup=s.warmup,
                target_ns=TARGET_POLL_NS,
                strict=True,
                overhead_ns=overhead,
                notes="the step-boundary check; SQLite also reads the database once per "
                "verify_interval (1 s), which shows in p99",
            )
        )
        change_token = c.store.change_token
        rows.append(
            measure(
                "poll",
                f"store.change_token() alone — {label}",
                lambda _, f=change_token: f(),
                none,
                n=s.n,
                warmup=s.warmup,
                overhead_ns=overhead,
            )
        )
    memory_client.close()

    # the refresh: another process publishes (or kills), then this client polls once
    pub = _Publisher(db)
    pc = time.perf_counter_ns
    enterprise = EvaluationContext(user_id="u-1", plan="enterprise")  # True unless killed
    if not client.is_enabled(PLANNER_KEY, enterprise):
        raise RuntimeError("the planner flag should be on for an enterprise context")
    publish_ns: list[float] = []
    kill_ns: list[float] = []
    try:
        for i in range(s.refresh_samples):
            pub.ask(f"publish {i}")
            gen = client.generation
            t0 = pc()
            client.poll()
            t1 = pc()
            if client.generation == gen:
                raise RuntimeError("the poll after another process's publish saw no change")
            publish_ns.append((t1 - t0) / US)
            ov_id = pub.ask("kill")
            gen = client.generation
            t0 = pc()
            client.poll()
            t1 = pc()
            if client.generation == gen or client.is_enabled(PLANNER_KEY, enterprise):
                raise RuntimeError("the poll after another process's kill missed it")
            kill_ns.append((t1 - t0) / US)
            pub.ask(f"end {ov_id}")
            client.poll()
            if not client.is_enabled(PLANNER_KEY, enterprise):
                raise RuntimeError("the end of another process's kill was not seen")
    finally:
        pub.close()
    rows.append(
        measure_seconds(
            "poll",
            "first client.poll() after a publish by another process (refresh)",
            publish_ns,
            unit="µs",
            notes="1-flag snapshot; reads the head and the overrides, compiles the rev",
        )
    )
    rows.append(
        measure_seconds(
            "poll",
            "first client.poll() after a kill by another process (refresh)",
            kill_ns,
            unit="µs",
            notes="re-reads the overrides and rebuilds the override index",
        )
    )
    client.close()
    return rows


def group_pinned(s: Settings, workdir: Path) -> list[Row]:
    """Reads from a RunConfig pinned at run start."""
    overhead = timer_overhead_ns()
    rows = []
    planner = FlagClient(planner_registry(), MemoryStore())
    _author(planner, planner_document(), "pinned workload")
    users = planner_users()
    rcs = [planner.resolve(EvaluationContext(user_id=u, plan=p)) for u, p in users]
    rows.append(
        measure(
            "pinned",
            "rc[key] — bool, 1-flag RunConfig",
            lambda rc: rc[PLANNER_KEY],
            rcs,
            n=s.n,
            warmup=s.warmup,
            overhead_ns=overhead,
            notes="compare: peer harness 'reference floor / pinned snapshot read'",
        )
    )
    floors = [MappingProxyType({PLANNER_KEY: rc[PLANNER_KEY], "_revision": 1}) for rc in rcs]
    rows.append(
        measure(
            "pinned",
            "floor: MappingProxyType[key] (the peer harness's pinned reference)",
            lambda m: m[PLANNER_KEY],
            floors,
            n=s.n,
            warmup=s.warmup,
            overhead_ns=overhead,
            notes="a frozen dict read, as bench_reference_floor.py's pinned mode",
        )
    )
    rows.append(
        measure(
            "pinned",
            "rc.enabled(key) — bool, 1-flag RunConfig",
            lambda rc: rc.enabled(PLANNER_KEY),
            rcs,
            n=s.n,
            warmup=s.warmup,
            overhead_ns=overhead,
        )
    )
    fleet = FlagClient(fleet_registry(), MemoryStore())
    _author(fleet, fleet_document(1_000), "pinned workload")
    frcs = [fleet.resolve(c) for c in fleet_contexts(1_000, 1_000)]
    for key, kind in (
        ("tools.tool_03.enabled", "bool"),
        ("model.primary", "enum"),
        ("model.fallbacks", "json list (returned as a copy)"),
    ):
        rows.append(
            measure(
                "pinned",
                f"rc[key] — {kind}, 50-flag RunConfig",
                lambda rc, k=key: rc[k],
                frcs,
                n=s.n,
                warmup=s.warmup,
                overhead_ns=overhead,
            )
        )
    text = [rc.to_json() for rc in frcs[:200]]
    rows.append(
        measure(
            "pinned",
            "RunConfig.from_json(text) — 50 flags, hash verified (resume)",
            lambda t: RunConfig.from_json(t),
            text,
            n=min(s.n, 5_000),
            warmup=min(s.warmup, 500),
            overhead_ns=overhead,
            notes=f"what a resumed run pays once; JSON ≈ {len(text[0]):,} bytes",
        )
    )
    return rows


def group_resolve(s: Settings, workdir: Path, tenants: int) -> list[Row]:
    """The fleet workload with ``tenants`` tenants."""
    g = f"resolve {tenants:,} tenants"
    registry = fleet_registry()
    overhead = timer_overhead_ns()
    rows: list[Row] = []
    db = workdir / f"fleet-{tenants}.db"
    writer = FlagClient(registry, SQLiteStore(db, create=True))
    reader = FlagClient(registry, SQLiteStore(db))

    # publish (validate + hash + write) and the reader's refresh (read + parse + compile)
    validate_s, publish_s, refresh_s, first_resolve_us = [], [], [], []
    validate_document(fleet_document(100), registry)  # warm pydantic's validators once
    for rep in range(s.publish_reps):
        doc = fleet_document(tenants, generation=rep)
        t0 = time.perf_counter()
        validate_document(doc, registry)
        t1 = time.perf_counter()
        _author(writer, doc, f"fleet generation {rep}")
        t2 = time.perf_counter()
        reader.poll()
        t3 = time.perf_counter()
        reader.resolve(EvaluationContext(tenant_id="t-000001", user_id="u", route="route-01"))
        t4 = time.perf_counter()
        if reader.snapshot_rev != rep + 1:
            raise RuntimeError("the reader did not pick up the publish")
        validate_s.append(t1 - t0)
        publish_s.append(t2 - t1)
        refresh_s.append(t3 - t2)
        first_resolve_us.append((t4 - t3) * 1e6)
    writer.close()
    size = db.stat().st_size
    rows.append(
        measure_seconds(
            g,
            "validate_document(snapshot) alone",
            validate_s,
            notes="part of publish",
        )
    )
    rows.append(
        measure_seconds(
            g,
            "client.publish(snapshot) — validate, hash, write",
            publish_s,
            extra={"db_bytes": size},
            notes=f"SQLite file {size / 2**20:,.1f} MiB after {s.publish_reps} rev(s)",
        )
    )
    rows.append(
        measure_seconds(
            g,
            "first reader.poll() after it — read, parse, compile",
            refresh_s,
            notes="another client on the same file",
        )
    )
    rows.append(
        measure_seconds(
            g,
            "first resolve after a refresh (first touch of a tenant and a route)",
            first_resolve_us,
            unit="µs",
        )
    )

    client = reader
    resolve = client.resolve
    # cold: every sample is the first touch of a tenant (its overlay is compiled then)
    half = tenants // 2
    cold_n = min(s.cold_samples, tenants - half)
    warm_up = fleet_contexts(half, min(s.warmup, half), seed=1)
    for c in warm_up:
        resolve(c)
    cold = [
        c._replace(tenant_id=f"t-{half + i:06d}") for i, c in enumerate(fleet_contexts(1, cold_n))
    ]
    rows.append(
        measure(
            g,
            "client.resolve(ctx) — cold tenant (first touch compiles its overlay)",
            resolve,
            cold,
            n=cold_n,
            warmup=0,
            bulk=False,
            overhead_ns=overhead,
            notes="one pass, each context a tenant not resolved before",
        )
    )
    warm = fleet_contexts(tenants, s.warm_contexts, seed=tenants)
    rows.append(
        measure(
            g,
            WARM_RESOLVE,
            resolve,
            warm,
            n=s.n,
            warmup=max(s.warmup, len(warm)),
            target_ns=TARGET_RESOLVE_NS if tenants >= 100_000 else None,
            overhead_ns=overhead,
            notes=f"{len(warm):,} contexts, tenants drawn uniformly from all {tenants:,}",
        )
    )
    rows.append(
        measure(
            g,
            "client.resolve(ctx).config_hash — warm",
            lambda c: resolve(c).config_hash,
            warm,
            n=s.n,
            warmup=s.warmup,
            target_ns=TARGET_RESOLVE_NS if tenants >= 100_000 else None,
            overhead_ns=overhead,
            notes="what the LangGraph wrapper needs at run start",
        )
    )
    is_enabled = client.is_enabled
    rows.append(
        measure(
            g,
            "client.is_enabled(key, ctx) — the planner flag in this snapshot",
            lambda c: is_enabled(PLANNER_KEY, c),
            warm,
            n=s.n,
            warmup=s.warmup,
            overhead_ns=overhead,
            notes="with tenant, route, experiments present",
        )
    )
    value = client.value
    rows.append(
        measure(
            g,
            "client.value('model.primary', ctx) — tenant overlay wins",
            lambda c: value("model.primary", c),
            warm,
            n=s.n,
            warmup=s.warmup,
            overhead_ns=overhead,
        )
    )
    client.close()
    return rows


# -- driver ------------------------------------------------------------------------------


def _run_worker(group: str, s: Settings) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="flagmw-bench-") as tmp:
        work = Path(tmp)
        if group == "eval":
            return group_eval(s, work)
        if group == "poll":
            return group_poll(s, work)
        if group == "pinned":
            return group_pinned(s, work)
        if group.startswith("resolve-"):
            return group_resolve(s, work, int(group.split("-", 1)[1]))
    raise SystemExit(f"unknown group {group!r}")


def _spawn(group: str, args: argparse.Namespace) -> list[Row]:
    cmd = [sys.executable, "-m", "benchmarks.bench_core", "--worker", group, "--n", str(args.n)]
    if args.quick:
        cmd.append("--quick")
    t0 = time.time()
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=args.timeout)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("ROWS ")]
    if p.returncode != 0 or not lines:
        tail = "\n".join((p.stderr or p.stdout).strip().splitlines()[-15:])
        raise SystemExit(f"group {group} failed (exit {p.returncode}):\n{tail}")
    print(f"# {group}: {time.time() - t0:.1f} s", file=sys.stderr, flush=True)
    return [Row(**r) for r in json.loads(lines[-1][5:])]


def _summary(rows: Sequence[Row]) -> list[str]:
    """The tenant-scaling comparison: warm medians per size, relative to the smallest."""
    warm = {
        r.group: r.median for r in rows if r.group.startswith("resolve") and r.name == WARM_RESOLVE
    }
    if len(warm) < 2:
        return []
    base_group, base = next(iter(warm.items()))
    parts = [f"{g.split(' ', 1)[1]}: {m / US:.1f} µs ({m / base:.2f}×)" for g, m in warm.items()]
    return [f"Warm resolve median by snapshot size (vs {base_group}): " + "; ".join(parts)]


def merged_table(paths: Sequence[str]) -> str:
    """Medians of the same rows across several ``--json`` outputs, one column per run,
    with the last run's p99 and the verdict of every run."""
    runs = []
    for path in paths:
        with open(path) as fh:
            runs.append(json.load(fh))
    order: list[tuple[str, str]] = []
    by_run: list[dict[tuple[str, str], Row]] = []
    for run in runs:
        rows = {(r["group"], r["name"]): Row(**r) for r in run["rows"]}
        by_run.append(rows)
        order += [k for k in rows if k not in order]
    names = " | ".join(f"median run {i + 1}" for i in range(len(runs)))
    out = [
        f"| group | scenario | unit | {names} | p99 run {len(runs)} | target | verdicts |",
        "|---|---|---|" + "---:|" * (len(runs) + 2) + "---|",
    ]
    for key in order:
        got = [rows.get(key) for rows in by_run]
        last = next(r for r in reversed(got) if r is not None)
        meds = " | ".join(fmt_value(r.median, r.unit) if r else "" for r in got)
        bound = (
            ("< " if last.strict else "≤ ") + fmt_value(last.target, last.unit)
            if last.target
            else ""
        )
        verdicts = " / ".join(r.verdict for r in got if r and r.verdict)
        out.append(
            f"| {key[0]} | {key[1]} | {last.unit} | {meds} | {fmt_value(last.p99, last.unit)} | "
            f"{bound} | {verdicts} |"
        )
    dates = "; ".join(
        f"run {i + 1}: {r['machine']['date']}, load {r['machine']['loadavg'][0]:.2f}, "
        f"flagmw {r['machine']['flagmw_commit']}"
        for i, r in enumerate(runs)
    )
    return "\n".join(out) + "\n\n" + dates


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=None, help="timed calls per row (default 100000)")
    ap.add_argument("--quick", action="store_true", help="N=10000, 1k/10k tenants, fewer reps")
    ap.add_argument("--json", default=None, help="also write rows and machine info here")
    ap.add_argument("--groups", nargs="*", default=list(GROUPS), choices=GROUPS)
    ap.add_argument(
        "--tenants", type=int, nargs="*", default=None, help="fleet sizes (default 1k 10k 100k)"
    )
    ap.add_argument("--timeout", type=int, default=1_800, help="seconds per group")
    ap.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    ap.add_argument(
        "--merge",
        nargs="+",
        metavar="JSON",
        help="print one table of medians from earlier --json outputs (one column per run)",
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--publisher", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.n is None:
        args.n = 10_000 if args.quick else 100_000
    if args.publisher:
        publisher_main(args.publisher)
        return 0
    if args.merge:
        print(merged_table(args.merge))
        return 0
    s = Settings(args.n, args.quick)
    if args.worker:
        mine = _run_worker(args.worker, s)
        print("ROWS " + json.dumps([r.to_dict() for r in mine]), flush=True)
        return 0

    tenants = args.tenants or ([1_000, 10_000] if args.quick else [1_000, 10_000, 100_000])
    info = machine_info()
    groups: list[str] = []
    for g in args.groups:
        groups += [f"resolve-{t}" for t in tenants] if g == "resolve" else [g]
    rows: list[Row] = []
    for g in groups:
        rows += _spawn(g, args)
    print(markdown_table(rows))
    print()
    for line in _summary(rows):
        print(line)
    overheads = sorted({r.overhead_ns for r in rows if r.unit == "ns"})
    print(
        f"N={args.n:,} timed calls per per-call row{' (--quick)' if args.quick else ''}; "
        f"timer overhead {'/'.join(map(str, overheads))} ns per sample (included in medians); "
        f"mean = untimed bulk loop. {info['date']}, {info['cpu']} ×{info['cores']}, "
        f"load {info['loadavg'][0]:.2f}, Python {info['python']}, SQLite {info['sqlite']}, "
        f"flagmw {info['flagmw_commit']}"
    )
    failed = [r for r in rows if r.verdict == "FAIL"]
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w") as fh:
            json.dump(
                {"machine": info, "argv": sys.argv[1:], "rows": [r.to_dict() for r in rows]},
                fh,
                indent=1,
            )
    return 1 if failed and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
