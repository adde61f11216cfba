"""The operator scenario of issue 8 §1, with real processes: the store's folder is moved
away for a while under a worker that keeps resolving. Nothing creates a store in its
place, a kill meanwhile is refused with one clear line (never reported as done), the
worker keeps its last good config (never registry defaults) and reports stale within a
poll interval, and a kill after the folder is back reaches it. A wrapped run resolved
while the client is stale says so on its root span (``flagmw.stale``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, TypedDict

import flagmw
from flagmw import FlagClient, FlagRegistry, SQLiteStore

FLAGS = {
    "tools.refund_api.enabled": {"type": "bool", "default": True, "binding": "hot", "owner": "t"},
    "loop.max_iterations": {"type": "int", "default": 8, "min": 1, "max": 50, "owner": "t"},
}
WORKER = """
import json, sys, time
from flagmw import FlagClient, FlagRegistry, SQLiteStore
registry = FlagRegistry.from_dict({"flags": %r})
client = FlagClient(registry, SQLiteStore(sys.argv[1], verify_interval=0.2))
print("ready", flush=True)
while True:
    client.poll()
    st = client.status()
    print(json.dumps({"t": time.time(), "refund": client.value("tools.refund_api.enabled"),
                      "loop": client.value("loop.max_iterations"), "stale": st.stale,
                      "healthy": st.healthy, "rev": st.snapshot_rev}), flush=True)
    if sys.stdin.closed:
        break
    time.sleep(0.05)
"""


def _flagmw(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("flagmw")
    run = [str(script)] if script.is_file() else [sys.executable, "-m", "flagmw.cli"]
    return subprocess.run([*run, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def _lines_until(proc: subprocess.Popen[str], pred: Any, timeout: float = 20.0) -> dict[str, Any]:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        row = json.loads(line)
        if pred(row):
            return dict(row)
    raise AssertionError("the worker never reported the expected state")


def test_a_store_moved_away_fails_safe_and_recovers(tmp_path: Path) -> None:
    folder = tmp_path / "flags"
    folder.mkdir()
    db = folder / "flagmw.db"
    registry = FlagRegistry.from_dict({"flags": FLAGS})
    with SQLiteStore(db, create=True) as store:
        FlagClient(registry, store).publish(
            {"values": {"loop.max_iterations": 3}}, author="ops", message="first"
        )
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER % (FLAGS,), str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "ready"
        ok = _lines_until(worker, lambda r: r["rev"] == 1)
        assert (ok["loop"], ok["stale"]) == (3, False)

        moved = tmp_path / "moved-away"
        os.rename(folder, moved)
        down = _lines_until(worker, lambda r: r["stale"])
        # the last good config, never the registry defaults (loop 8)
        assert (down["loop"], down["refund"], down["healthy"]) == (3, True, False)
        killed = _flagmw(
            "kill",
            "tools.refund_api.enabled",
            "--reason",
            "CRM down",
            "--store",
            str(db),
            cwd=tmp_path,
        )
        assert killed.returncode == 2
        assert "no flagmw store at" in killed.stderr
        assert "Traceback" not in killed.stderr
        assert not folder.exists()  # no folder, no empty store in its place
        still = _lines_until(worker, lambda r: True)
        assert (still["loop"], still["refund"], still["stale"]) == (3, True, True)

        os.rename(moved, folder)
        back = _lines_until(worker, lambda r: not r["stale"])
        assert back["healthy"]
        killed = _flagmw(
            "kill",
            "tools.refund_api.enabled",
            "--reason",
            "CRM down",
            "--store",
            str(db),
            cwd=tmp_path,
        )
        assert killed.returncode == 0, killed.stderr
        off = _lines_until(worker, lambda r: r["refund"] is False)
        assert (off["loop"], off["stale"]) == (3, False)
    finally:
        worker.kill()
        worker.wait(timeout=30)


class _S(TypedDict, total=False):
    out: int


def test_a_run_resolved_from_stale_config_says_so_on_its_root_span(tmp_path: Path) -> None:
    from langgraph.graph import START, StateGraph
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from flagmw.tracing import RunTracer

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    folder = tmp_path / "flags"
    folder.mkdir()
    store = SQLiteStore(folder / "flagmw.db", create=True, verify_interval=0.0)
    client = FlagClient(FlagRegistry.from_dict({"flags": FLAGS}), store)
    client.publish({"values": {"loop.max_iterations": 3}}, author="ops", message="first")
    b = StateGraph(_S)
    b.add_node("n", lambda s: {"out": flagmw.current()["loop.max_iterations"]})
    b.add_edge(START, "n")
    tracer = RunTracer(tracer_provider=provider)
    graph = flagmw.wrap(b.compile(), client, tracer=tracer, name="agent")
    assert graph.invoke({})["out"] == 3
    os.rename(folder, tmp_path / "gone")
    assert graph.invoke({})["out"] == 3  # the last good config
    stale = [dict(s.attributes or {}).get("flagmw.stale") for s in exporter.get_finished_spans()]
    assert stale == [False, True]
    provider.shutdown()
    store.close()
