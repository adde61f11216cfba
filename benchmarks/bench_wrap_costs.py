"""The four per-run figures of ``flagmw.wrap`` (issue 7, §5), on trivial graphs so that
flagmw's share is not hidden behind the agent's own work:

1. **per run**, a trivial 5-node graph (each node returns ``{}``) with ``InMemorySaver``:
   median wrapped / median bare of interleaved ``invoke`` calls on new threads (target
   ≤ 1.05);
2. **per superstep when nothing changed**: the added time of a 25-node graph minus that
   of a 5-node one, over the 20 extra supersteps (target ≤ 15 µs);
3. **run start** for a 50-flag registry: the wrapper's set-up of one invocation (the
   effective config, ``_Invocation``, resolving, encoding the pin, preparing the config
   passed down, telling the observers), timed on its own, back to back (target ≤ 100
   µs); and **in situ**, inside the runs of row 1, where each start finds the CPU's
   caches full of the LangGraph run before it — two to three times the back-to-back
   figure, and most of the wrapper's cost per run;
4. **``flagmw.current()[key]`` inside a node**: a node of a wrapped graph times 20,000
   reads (target ≤ 0.15 µs per read).

All wrapped graphs use the default tracer (``RunTracer`` with no OpenTelemetry SDK
configured), as a user's would. Times are medians of wall time
(``time.perf_counter_ns``) and of process CPU time (``time.process_time_ns``, less
disturbed by other processes on a shared machine).

    .venv/bin/python -m benchmarks.bench_wrap_costs [--pairs 300]

    .venv/bin/python -m benchmarks.bench_wrap_costs --pairs 400 --rounds 5

Figures: docs/performance.md ("The LangGraph wrapper, per run") has today's runs against
the previous code in the same minutes. On a shared machine a single run's 5-node ratio
moves by ±2 %; ``--rounds`` reports the median of several rounds, and
:mod:`benchmarks.wrap_instructions` counts the same runs in instructions, which load does
not move.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any, TypedDict

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph

import flagmw
from flagmw import FlagClient, FlagRegistry, MemoryStore
from flagmw.langgraph.context import effective_config
from flagmw.langgraph.lifecycle import _Invocation

RUN_TARGET = 1.05
STEP_TARGET_US = 15.0
START_TARGET_US = 100.0
CURRENT_TARGET_US = 0.15


class S(TypedDict, total=False):
    x: int


def trivial(nodes: int, saver: Any) -> Any:
    builder = StateGraph(S)
    names = [f"n{i}" for i in range(nodes)]
    for name in names:
        builder.add_node(name, lambda s: {})
    builder.add_edge(START, names[0])
    for a, b in itertools.pairwise(names):
        builder.add_edge(a, b)
    return builder.compile(checkpointer=saver)


def client_50() -> FlagClient:
    flags = [flagmw.Flag("agent.enabled", "bool", True, binding="hot", run_kill=True, owner="b")]
    flags += [flagmw.Flag(f"f.{i:02d}", "int", i, owner="b") for i in range(49)]
    client = FlagClient(FlagRegistry(flags), MemoryStore(), environment="bench")
    client.publish(
        {"values": {f"f.{i:02d}": i + 1 for i in range(0, 49, 2)}}, author="b", message="bench"
    )
    return client


def cfg() -> dict[str, Any]:
    return {"configurable": {"thread_id": uuid.uuid4().hex, "tenant_id": "acme"}}


def pairs_of(bare: Any, wrapped: Any, pairs: int) -> dict[str, list[float]]:
    """Interleaved wall and process-CPU times (µs) of ``invoke`` on new threads."""
    for _ in range(max(20, pairs // 10)):
        bare.invoke({}, cfg())
        wrapped.invoke({}, cfg())
    out: dict[str, list[float]] = {"b": [], "w": [], "b_cpu": [], "w_cpu": []}
    pc, cpu = time.perf_counter_ns, time.process_time_ns
    gc.collect()
    for i in range(pairs):
        for name in ("b", "w") if i % 2 == 0 else ("w", "b"):
            graph = bare if name == "b" else wrapped
            c = cfg()
            c0, t0 = cpu(), pc()
            graph.invoke({}, c)
            t1, c1 = pc(), cpu()
            out[name].append((t1 - t0) / 1e3)
            out[name + "_cpu"].append((c1 - c0) / 1e3)
    return out


def run_rows(pairs: int) -> dict[str, Any]:
    client = client_50()
    rows: dict[str, Any] = {}
    for nodes in (5, 25):
        saver = InMemorySaver()
        bare = trivial(nodes, saver)
        wrapped = flagmw.wrap(trivial(nodes, saver), client)
        t = pairs_of(bare, wrapped, pairs)
        row: dict[str, Any] = {}
        for clock, suffix in (("wall", ""), ("cpu", "_cpu")):
            b, w = t["b" + suffix], t["w" + suffix]
            row[clock] = {
                "bare_us": statistics.median(b),
                "wrapped_us": statistics.median(w),
                "ratio": statistics.median(w) / statistics.median(b),
                "paired_ratio": statistics.median(x / y for x, y in zip(w, b, strict=True)),
            }
        rows[nodes] = row
    client.close()
    out: dict[str, Any] = {"runs": rows}
    for clock in ("wall", "cpu"):
        added5 = rows[5][clock]["wrapped_us"] - rows[5][clock]["bare_us"]
        added25 = rows[25][clock]["wrapped_us"] - rows[25][clock]["bare_us"]
        out[f"per_superstep_us_{clock}"] = (added25 - added5) / 20
    return out


def start_us(samples: int) -> float:
    client = client_50()
    graph = flagmw.wrap(trivial(5, InMemorySaver()), client)
    settings = graph._flagmw  # type: ignore[attr-defined]
    times: list[float] = []
    pc = time.perf_counter_ns
    for i in range(samples + 200):
        config = cfg()
        t0 = pc()
        merged = effective_config(graph.config, config)
        inv = _Invocation(graph, settings, {}, config, {}, merged)
        inv.launch(graph, {}, inv.no_pin, None)
        t1 = pc()
        if i >= 200:
            times.append((t1 - t0) / 1e3)
    client.close()
    return statistics.median(times)


def start_in_situ_us(runs: int) -> float:
    """The same set-up timed inside real runs: ``_Invocation.launch`` (resolve, pin,
    config passed down, observers; the effective config and ``_Invocation()`` around it
    are a further ≈ 12 µs) of a wrapped 5-node graph whose runs alternate with runs of
    the bare one, as in the per-run rows. Between two starts a whole LangGraph run has
    gone through the CPU's caches, so this is what a start costs in a real process;
    :func:`start_us` repeats the start back to back (caches warm). The timer wraps the
    method for this measure only."""
    client = client_50()
    saver = InMemorySaver()
    bare, wrapped = trivial(5, saver), flagmw.wrap(trivial(5, saver), client)
    times: list[float] = []
    launch = _Invocation.launch
    pc = time.perf_counter_ns

    def timed(self: _Invocation, *args: Any) -> dict[str, Any]:
        t0 = pc()
        down = launch(self, *args)
        times.append((pc() - t0) / 1e3)
        return down

    _Invocation.launch = timed  # type: ignore[method-assign]
    try:
        for _ in range(runs + 100):
            bare.invoke({}, cfg())
            wrapped.invoke({}, cfg())
    finally:
        _Invocation.launch = launch  # type: ignore[method-assign]
    client.close()
    return statistics.median(times[100:])


def current_us(reads: int = 20_000, repeat: int = 15) -> float:
    client = client_50()
    per: list[float] = []

    def node(state: S) -> dict[str, Any]:
        current = flagmw.current
        t0 = time.perf_counter_ns()
        for _ in range(reads):
            current()["f.07"]
        per.append((time.perf_counter_ns() - t0) / reads / 1e3)
        return {}

    builder = StateGraph(S)
    builder.add_node("n", node)
    builder.add_edge(START, "n")
    graph = flagmw.wrap(builder.compile(checkpointer=InMemorySaver()), client)
    for _ in range(repeat):
        graph.invoke({}, cfg())
    client.close()
    return statistics.median(per)


def measure(pairs: int, rounds: int = 1) -> dict[str, Any]:
    """Every row; with ``rounds`` > 1 the per-run rows are measured that many times
    (fresh graphs, saver and client each round) and the round whose 5-node CPU ratio is
    the median is reported, with every round's ratio in ``round_ratios``."""
    results = [run_rows(pairs) for _ in range(max(1, rounds))]
    results.sort(key=lambda r: r["runs"][5]["cpu"]["ratio"])
    out = results[len(results) // 2]
    out["round_ratios"] = [r["runs"][5]["cpu"]["ratio"] for r in results]
    out["start_us"] = start_us(max(500, pairs * 5))
    out["start_in_situ_us"] = start_in_situ_us(max(300, pairs))
    out["current_us"] = current_us()
    return out


def table(m: dict[str, Any]) -> str:
    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    lines = ["| measure | clock | value | target | verdict |", "|---|---|---:|---:|---|"]
    for clock in ("cpu", "wall"):
        r5, r25 = m["runs"][5][clock], m["runs"][25][clock]
        lines += [
            f"| per run, 5-node graph, InMemorySaver: ratio of medians (bare "
            f"{r5['bare_us']:.0f} µs, wrapped {r5['wrapped_us']:.0f} µs; paired ratio "
            f"{r5['paired_ratio']:.3f}) | {clock} | {r5['ratio']:.3f} | ≤ {RUN_TARGET:.2f} | "
            f"{verdict(r5['ratio'] <= RUN_TARGET)} |",
            f"| per run, 25-node graph (bare {r25['bare_us']:.0f} µs, wrapped "
            f"{r25['wrapped_us']:.0f} µs; paired {r25['paired_ratio']:.3f}) | {clock} | "
            f"{r25['ratio']:.3f} | | |",
            f"| added per superstep, nothing changed ((added 25 - added 5) / 20) | {clock} | "
            f"{m['per_superstep_us_' + clock]:.1f} µs | ≤ {STEP_TARGET_US:.0f} µs | "
            f"{verdict(m['per_superstep_us_' + clock] <= STEP_TARGET_US)} |",
        ]
    lines += [
        f"| run start, 50 flags (back to back: caches warm) | wall | {m['start_us']:.1f} µs | "
        f"≤ {START_TARGET_US:.0f} µs | {verdict(m['start_us'] <= START_TARGET_US)} |",
        f"| run start, 50 flags, in situ (between whole runs: caches cold) | wall | "
        f"{m['start_in_situ_us']:.1f} µs | ≤ {START_TARGET_US:.0f} µs | "
        f"{verdict(m['start_in_situ_us'] <= START_TARGET_US)} |",
        f"| flagmw.current()[key] in a node | wall | {m['current_us'] * 1e3:.0f} ns | "
        f"≤ {CURRENT_TARGET_US * 1e3:.0f} ns | {verdict(m['current_us'] <= CURRENT_TARGET_US)} |",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pairs", type=int, default=300, help="interleaved bare/wrapped pairs")
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure the per-run rows this many times and report the median round "
        "(a single run's median moves by ±2 %% on a shared machine)",
    )
    args = ap.parse_args(argv)
    m = measure(args.pairs, args.rounds)
    print(table(m))
    if len(m["round_ratios"]) > 1:
        ratios = " / ".join(f"{r:.3f}" for r in m["round_ratios"])
        print(
            f"\n{len(m['round_ratios'])} rounds of {args.pairs} pairs; 5-node CPU ratio of "
            f"each round, sorted: {ratios}; the table shows the median round."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
