"""The pin: encoding a 50-flag RunConfig at run start, verifying it on resume, and
finding it in a long thread (issue 7, bugs 3.2 and 3.3).

* ``encode_pin`` — on every new run's critical path (with its RFC 8785 digest; keyed:
  HMAC-SHA256); part of the "run start ≤ 100 µs for 50 flags" budget;
* ``decode_pin`` — once per resume (digest over RFC 8785 + ``config_hash``);
* ``find_pin`` on a 400-superstep InMemorySaver thread — checkpoints read per resume.

Run::

    .venv/bin/python -m benchmarks.bench_pin [--n 20000]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, TypedDict

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt

import flagmw
from benchmarks._snapshots import fleet_contexts, fleet_document, fleet_registry
from benchmarks._timing import machine_info, markdown_table, measure, timer_overhead_ns
from flagmw import FlagClient, MemoryStore
from flagmw.langgraph.pin import decode_pin, encode_pin
from flagmw.langgraph.pin_store import find_pin


class _Loop(TypedDict):
    n: int


class _Counting(InMemorySaver):
    reads = 0

    def get_tuple(self, config: Any) -> Any:
        self.reads += 1
        return super().get_tuple(config)

    def list(self, *args: Any, **kwargs: Any) -> Any:
        for tup in super().list(*args, **kwargs):
            self.reads += 1
            yield tup


def reads_on_resume(client: FlagClient, steps: int) -> int:
    """Checkpoints ``find_pin`` reads to resume a thread of ``steps`` supersteps."""
    builder = StateGraph(_Loop)
    builder.add_node("step", lambda s: {"n": s["n"] + 1})
    builder.add_node("ask", lambda s: {"n": len(str(interrupt("?")))})
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", lambda s: "step" if s["n"] < steps else "ask")
    builder.add_edge("ask", END)
    saver = _Counting()
    graph = flagmw.wrap(builder.compile(checkpointer=saver), client, tracer=False)
    config: Any = {"configurable": {"thread_id": "long"}, "recursion_limit": steps + 10}
    graph.invoke({"n": 0}, config)
    saver.reads = 0
    found = find_pin(saver, config)
    assert found.pin is not None
    return saver.reads


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=20_000, help="timed calls per scenario")
    args = ap.parse_args(argv)
    client = FlagClient(fleet_registry(), MemoryStore(), environment="production")
    client.publish(fleet_document(100), author="bench", message="fleet")
    rcs = [client.resolve(ctx) for ctx in fleet_contexts(100, 64)]
    texts = [encode_pin(rc) for rc in rcs]
    overhead = timer_overhead_ns()
    n = args.n
    rows = [
        measure("pin", "client.resolve(ctx) — for scale", client.resolve,
                fleet_contexts(100, 64), n=n, overhead_ns=overhead),
        measure("pin", "encode_pin(rc) — 50 flags, sha256 digest", encode_pin, rcs, n=n,
                overhead_ns=overhead, notes="run start"),
        measure("pin", "encode_pin(rc, key=…) — HMAC-SHA256", lambda rc: encode_pin(rc, key="k"),
                rcs, n=n, overhead_ns=overhead),
        measure("pin", "decode_pin(text) — verify digest and config_hash", decode_pin, texts,
                n=max(n // 10, 100), warmup=200, overhead_ns=overhead, notes="resume"),
    ]  # fmt: skip
    info = machine_info()
    print(f"# flagmw pin ({info['date']})\n")
    print(
        f"{info['cpu']}, {info['cores']} cores, "
        f"load {tuple(round(x, 2) for x in info['loadavg'])}, "
        f"Python {info['python']}, flagmw {info['flagmw_commit']}\n"
    )
    print(markdown_table(rows))
    print(f"\nstored pin: {sum(map(len, texts)) // len(texts):,} characters (50 flags)")
    print(
        "checkpoints read to find the pin of a 400-superstep thread:",
        reads_on_resume(client, 400),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
