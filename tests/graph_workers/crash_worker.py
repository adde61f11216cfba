"""A wrapped graph run in its own process, to be killed mid-run and resumed by another.

Usage::

    python crash_worker.py STORE CHECKPOINTS THREAD OUTDIR start|resume

Both modes build the same graph ``a → b → c`` (SQLite flag store, SqliteSaver file) and
append what every node sees (:func:`support.observe`) as one JSON line to
``OUTDIR/<mode>.jsonl``. In ``start`` mode node ``b`` blocks after recording (the test
kills the process with SIGKILL there); ``resume`` runs ``invoke(None, config)`` — a crash
recovery — and prints the final log as JSON.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from langgraph.checkpoint.sqlite import SqliteSaver
from support import linear_graph, make_registry

import flagmw
from flagmw import FlagClient, SQLiteStore


def main() -> None:
    store, checkpoints, thread, outdir, mode = sys.argv[1:6]
    out = Path(outdir)
    journal = out / f"{mode}.jsonl"

    def record(name: str, seen: dict[str, Any]) -> None:
        with journal.open("a") as f:
            f.write(json.dumps({**seen, "pid": os.getpid()}) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if mode == "start" and name == "b":
            while True:  # until SIGKILL
                time.sleep(0.05)

    client = FlagClient(make_registry(), SQLiteStore(store), environment="test")
    config = {"configurable": {"thread_id": thread, "tenant_id": "acme"}}
    with SqliteSaver.from_conn_string(checkpoints) as saver:
        graph = flagmw.wrap(
            linear_graph(("a", "b", "c"), {n: record for n in "abc"}, checkpointer=saver),
            client,
            tracer=False,
        )
        if mode == "start":
            graph.invoke({"log": []}, config)
            raise SystemExit("node b should have blocked")
        result = graph.invoke(None, config)
        print(json.dumps(result["log"]))


if __name__ == "__main__":
    main()
