"""flagmw.wrap across real OS processes sharing a SQLite flag store and a SqliteSaver file.

* crash: a worker process runs a wrapped graph and is killed with SIGKILL while node
  ``b`` runs; ten snapshots are published; a fresh process resumes the thread with
  ``invoke(None, config)`` and sees exactly the RunConfig pinned when the run started;
* kill: while a run is in flight, another process kills a flag (``flagmw kill`` or a
  script calling ``FlagClient.kill``); the run sees it at its next step boundary — the
  assertions name the step, never a wall-clock time; a drained run resumes after the
  kill is ended from another process.

Worker scripts: ``tests/graph_workers/``.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from graph_workers.support import linear_graph, make_registry, publish, rev_of
from langgraph.checkpoint.memory import InMemorySaver

import flagmw
from flagmw import EvaluationContext, FlagClient, SQLiteStore
from flagmw.langgraph.drain import RunDrained
from flagmw.langgraph.keys import PIN_KEY, PIN_NAMESPACE
from flagmw.langgraph.pin import decode_pin

WORKERS = Path(__file__).parent / "graph_workers"
FLAGMW_COMMAND = Path(sys.executable).parent / "flagmw"


def wait_for(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def journal(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def root_metadata(checkpoints: Path, thread: str) -> list[dict[str, Any]]:
    """The metadata of ``thread``'s root checkpoints in a SqliteSaver file, read by this
    process while the worker writes it."""
    try:
        with sqlite3.connect(f"file:{checkpoints}?mode=ro", uri=True, timeout=5) as db:
            rows = db.execute(
                "SELECT metadata FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ''",
                (thread,),
            ).fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []
    return [json.loads(m) for (m,) in rows]


def pin_metadata(checkpoints: Path, thread: str) -> list[dict[str, Any]]:
    """The metadata of ``thread``'s pin checkpoints (its ``flagmw.pin`` namespace)."""
    with sqlite3.connect(f"file:{checkpoints}?mode=ro", uri=True, timeout=5) as db:
        rows = db.execute(
            "SELECT metadata FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ?",
            (thread, PIN_NAMESPACE),
        ).fetchall()
    return [json.loads(m) for (m,) in rows]


def test_crash_mid_run_then_a_fresh_process_resumes_with_the_pinned_config(
    tmp_path: Path,
) -> None:
    store, checkpoints = tmp_path / "flags.db", tmp_path / "checkpoints.sqlite"
    thread = f"crash-{uuid.uuid4().hex[:8]}"
    client = FlagClient(make_registry(), SQLiteStore(store, create=True), environment="test")
    publish(client, 1)
    args = [str(store), str(checkpoints), thread, str(tmp_path)]
    worker = subprocess.Popen(
        [sys.executable, str(WORKERS / "crash_worker.py"), *args, "start"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(
            lambda: (
                [e for e in journal(tmp_path / "start.jsonl") if e["node"] == "b"]
                or worker.poll() is not None
            ),
            "node b to start in the worker",
        )
        assert worker.poll() is None, worker.communicate()
        # under the default durability ("async") a checkpoint is written in the background
        # while the next step runs: wait until the one saved after "a" (step 1) is on
        # disk, so the resume deterministically continues at "b"
        metas = wait_for(
            lambda: [m for m in root_metadata(checkpoints, thread) if m["step"] >= 1],
            "the checkpoint after node a",
        )
        assert all(PIN_KEY not in m for m in metas)
        (pin,) = [m[PIN_KEY] for m in pin_metadata(checkpoints, thread)]
        os.kill(worker.pid, signal.SIGKILL)
        assert worker.wait(timeout=30) == -signal.SIGKILL
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    started = journal(tmp_path / "start.jsonl")
    assert [e["node"] for e in started] == ["a", "b"]
    pinned_hash = started[0]["hash"]
    assert decode_pin(pin).config_hash == pinned_hash

    for n in range(2, 12):  # ten new snapshots, each changing every pinned flag
        publish(client, n)
    fresh = client.resolve(EvaluationContext(tenant_id="acme", route="LangGraph"))
    assert fresh.snapshot_rev == 11
    assert fresh.config_hash != pinned_hash
    client.close()

    resumed = subprocess.run(
        [sys.executable, str(WORKERS / "crash_worker.py"), *args, "resume"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    seen = journal(tmp_path / "resume.jsonl")
    assert [e["node"] for e in seen] == ["b", "c"]  # b re-runs from its first line
    assert {e["pid"] for e in seen} != {started[0]["pid"]}
    for entry in seen:
        assert entry["resumed"] is True
        assert entry["hash"] == pinned_hash
        assert entry["rev"] == 1
        assert rev_of(entry["pinned"]) == 1
    final = json.loads(resumed.stdout)
    assert [e["node"] for e in final] == ["a", "b", "c"]


# -- a kill from another process --------------------------------------------------------


def kill_from_another_process(how: str, store: Path, key: str, reason: str) -> str:
    """Kill ``key`` from a separate process; returns the override id."""
    if how == "cli":
        cmd = [str(FLAGMW_COMMAND), "--store", str(store), "--json", "--actor", "oncall"]
        cmd += ["kill", key, "--reason", reason, "--ttl", "1h"]
    else:
        cmd = [sys.executable, str(WORKERS / "kill_worker.py"), str(store), "kill", key, reason]
    # cwd: the command must not pick up a flags.yaml of the checkout
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=120, cwd=store.parent, check=False
    )
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["id"])


def unkill_from_another_process(store: Path, override_id: str) -> None:
    cmd = [sys.executable, str(WORKERS / "kill_worker.py"), str(store), "unkill", override_id]
    done = subprocess.run([*cmd, "fixed"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@functools.cache
def _cli_available() -> bool:
    if not FLAGMW_COMMAND.exists():
        return False
    probe = subprocess.run(
        [str(FLAGMW_COMMAND), "kill", "--help"], capture_output=True, text=True, timeout=60
    )
    return probe.returncode == 0 and "--reason" in probe.stdout


@pytest.fixture(params=["script", "cli"])
def how(request: pytest.FixtureRequest) -> str:
    if request.param == "cli" and not _cli_available():
        pytest.skip("the `flagmw kill` command is not available in this checkout")
    return str(request.param)


@pytest.fixture
def sqlite_client(tmp_path: Path) -> Iterator[tuple[FlagClient, Path]]:
    store = tmp_path / "flags.db"
    client = FlagClient(make_registry(), SQLiteStore(store, create=True), environment="test")
    publish(client, 1)
    yield client, store
    client.close()


def test_a_run_kill_from_another_process_drains_the_run_before_its_next_step(
    sqlite_client: tuple[FlagClient, Path], how: str
) -> None:
    client, store = sqlite_client
    made: dict[str, str] = {}

    def kill(name: str, seen: dict[str, Any]) -> None:
        # node "b" (LangGraph step 2) waits until the other process has finished
        made["id"] = kill_from_another_process(how, store, "agent.enabled", "CRM returns 500")

    graph = flagmw.wrap(
        linear_graph(("a", "b", "c", "d"), {"b": kill}, checkpointer=InMemorySaver()),
        client,
        tracer=False,
    )
    config = {"configurable": {"thread_id": "t-kill"}}
    with pytest.raises(RunDrained) as err:
        graph.invoke({"log": []}, config)
    assert err.value.key == "agent.enabled"
    assert err.value.override_id == made["id"]
    assert err.value.reason == "CRM returns 500"
    assert err.value.step == 3  # the boundary right after b: c never started
    state = graph.get_state(config)
    assert state.next == ("c",)
    assert [(e["node"], e["langgraph_step"]) for e in state.values["log"]] == [("a", 1), ("b", 2)]

    unkill_from_another_process(store, made["id"])
    out = graph.invoke(None, config)
    assert [e["node"] for e in out["log"]] == ["a", "b", "c", "d"]
    assert len({e["hash"] for e in out["log"]}) == 1  # the pin survives the drain


def test_a_hot_kill_from_another_process_reaches_the_next_step(
    sqlite_client: tuple[FlagClient, Path], how: str
) -> None:
    client, store = sqlite_client
    made: dict[str, str] = {}

    def kill(name: str, seen: dict[str, Any]) -> None:
        made["id"] = kill_from_another_process(how, store, "tools.refund_api.enabled", "fraud")

    events: list[tuple[str, dict[str, Any]]] = []

    class Events:
        def run_started(self, run: Any) -> None: ...
        def activate(self, run: Any) -> Any:
            import contextlib

            return contextlib.nullcontext()

        def run_event(self, run: Any, name: str, attributes: Any) -> None:
            events.append((name, dict(attributes)))

        def run_ended(self, run: Any, outcome: str, error: Any) -> None: ...

    graph = flagmw.wrap(
        linear_graph(("a", "b", "c", "d"), {"b": kill}, checkpointer=InMemorySaver()),
        client,
        tracer=False,
        observers=[Events()],
    )
    out = graph.invoke({"log": []}, {"configurable": {"thread_id": "t-hot"}})
    enabled = {e["node"]: e["hot"]["tools.refund_api.enabled"] for e in out["log"]}
    assert enabled == {"a": True, "b": True, "c": False, "d": False}
    assert events == [
        (
            "flag_changed",
            {
                "key": "tools.refund_api.enabled",
                "old": True,
                "new": False,
                "layer": "override",
                "override_id": made["id"],
                "step": 3,
            },
        )
    ]
    assert len({e["hash"] for e in out["log"][:2]}) == 1
