"""What a tool gate costs per call (issue 7: tools and gates).

    .venv/bin/python -m benchmarks.bench_tools              # 10 000 interleaved rounds
    .venv/bin/python -m benchmarks.bench_tools --rounds 2000

1. ``tool.invoke(tool_call)`` of one ``@tool`` inside a run (``use_run``): ungated, gated
   with ``@flagmw.gated`` and allowed, gated and refused (a kill).
2. One tool call through a ``ToolNode`` graph wrapped with ``flagmw.wrap``, without and
   with ``gates={name: flag}`` (the name gate of ``flagmw.langgraph.gates``), allowed.

Each round runs every variant once, in the same order; reported: the median of each
variant in microseconds after the first 10 % of rounds (warm-up). Wall-clock
``perf_counter_ns`` on a shared machine: compare the medians of one run, not across runs.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

import flagmw
from flagmw import FlagRegistry
from flagmw.langgraph.run import RunState, use_run
from flagmw.testing import memory_client

KEY = "tools.refund_api.enabled"
REGISTRY = {
    "flags": {
        KEY: {"type": "bool", "default": True, "binding": "hot", "description": "Refund gate"}
    }
}


@tool
def refund(order_id: str) -> str:
    """Refund an order."""
    return order_id


CALL = {"name": "refund", "args": {"order_id": "o-1"}, "id": "c1", "type": "tool_call"}


def _medians(variants: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    samples: dict[str, list[int]] = {k: [] for k in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            t0 = time.perf_counter_ns()
            fn()
            samples[name].append(time.perf_counter_ns() - t0)
    skip = rounds // 10
    return {k: statistics.median(v[skip:]) / 1000 for k, v in samples.items()}


def _tool_graph() -> Any:
    builder = StateGraph(MessagesState)
    builder.add_node("tools", ToolNode([refund]))
    builder.add_edge(START, "tools")
    builder.add_edge("tools", END)
    return builder.compile()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=10_000)
    args = ap.parse_args(argv)
    logging.getLogger("flagmw").setLevel(logging.ERROR)
    client = memory_client(FlagRegistry.from_dict(REGISTRY), {})
    gated = flagmw.gated(KEY)(refund)

    with use_run(RunState(client=client, rc=client.resolve(), name="bench")):
        allowed = _medians(
            {"ungated": lambda: refund.invoke(CALL), "gated, allowed": lambda: gated.invoke(CALL)},
            args.rounds,
        )
    kill = client.kill(KEY, reason="bench", actor="bench")
    with use_run(RunState(client=client, rc=client.resolve(), name="bench")):
        refused = _medians({"gated, refused": lambda: gated.invoke(CALL)}, args.rounds)
    client.end_override(kill.id, actor="bench", reason="bench")

    inp = {"messages": [AIMessage("", tool_calls=[CALL])]}
    plain = flagmw.wrap(_tool_graph(), client, tracer=False)
    named = flagmw.wrap(_tool_graph(), client, tracer=False, gates={"refund": KEY})
    graphs = _medians(
        {"wrap": lambda: plain.invoke(inp), "wrap(gates=)": lambda: named.invoke(inp)},
        max(1, args.rounds // 5),
    )

    print(f"| call ({args.rounds} rounds) | median µs |\n|---|---|")
    for name, value in {**allowed, **refused}.items():
        print(f"| tool.invoke, {name} | {value:.1f} |")
    for name, value in graphs.items():
        print(f"| ToolNode graph, {name} | {value:.1f} |")
    print(
        f"\n@gated adds {allowed['gated, allowed'] - allowed['ungated']:.1f} µs per allowed call; "
        f"wrap(gates=) adds {graphs['wrap(gates=)'] - graphs['wrap']:.1f} µs per graph run"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
