"""One drill worker: a real LangGraph graph, wrapped by flagmw, whose every superstep
calls a gated tool; runs back to back until its stdin closes.

Protocol (JSON lines on stdout; times are ``time.monotonic()``, which on Linux is one
system-wide clock, so the coordinator compares them across processes without skew):

* ``{"ev": "ready"}`` once the client has loaded the store;
* ``{"ev": "tool", "t": …}`` each time the tool's body starts (an execution);
* ``{"ev": "refused", "t": …}`` each time the gate refuses a call (enforcement);
* ``{"ev": "knows", "t": …, "gen": …}`` each time the client's generation moves (a
  watcher thread polls ``client.poll()`` every 0.5 ms: commit → client knows);
* ``{"ev": "step", "t": …}`` every :data:`STEP_SAMPLE`-th superstep (the step spacing).

Run as ``python -m flagmw.drill.worker STORE KEY TOOL_LATENCY``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any, TypedDict

__all__ = ["STEP_SAMPLE", "main"]

#: a ``step`` event every this many supersteps: often enough that even a short drill on
#: a loaded machine sees two of them per worker (the spacing is their distance / this)
STEP_SAMPLE = 10

_out_lock = threading.Lock()


def _emit(ev: str, **fields: Any) -> None:
    with _out_lock:
        sys.stdout.write(json.dumps({"ev": ev, **fields}) + "\n")
        sys.stdout.flush()


class _State(TypedDict, total=False):
    n: int


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    spec, key, latency = args[0], args[1], float(args[2])
    from langchain_core.tools import tool
    from langgraph.graph import END, START, StateGraph

    import flagmw
    from flagmw.cli.session import stored_registry
    from flagmw.client.client import FlagClient
    from flagmw.stores.url import open_store

    store = open_store(spec)
    registry, _ = stored_registry(store)
    assert registry is not None, "the drill store has no snapshot"
    client = FlagClient(registry, store, startup_timeout=5)

    @flagmw.gated(key)
    @tool
    def guarded(order: str) -> str:
        """The drill's side-effecting tool."""
        _emit("tool", t=time.monotonic())
        if latency:
            time.sleep(latency)
        return "done"

    def step(state: _State) -> dict[str, Any]:
        out = guarded.invoke({"order": "o"})
        if out != "done":
            _emit("refused", t=time.monotonic())
        n = state.get("n", 0) + 1
        if n % STEP_SAMPLE == 0:
            _emit("step", t=time.monotonic())
        return {"n": n}

    builder = StateGraph(_State)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", lambda s: END if s["n"] >= 200 else "step")
    graph = flagmw.wrap(builder.compile(), client, tracer=False, name="drill")

    stop = threading.Event()

    def watch() -> None:
        gen = client.poll()
        while not stop.is_set():
            now_gen = client.poll()
            if now_gen != gen:
                _emit("knows", t=time.monotonic(), gen=now_gen)
                gen = now_gen
            time.sleep(0.0005)

    def stdin_closed() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=watch, daemon=True).start()
    threading.Thread(target=stdin_closed, daemon=True).start()
    _emit("ready")
    while not stop.is_set():
        graph.invoke({"n": 0}, {"recursion_limit": 1000})
    client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
