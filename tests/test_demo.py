"""`flagmw demo` runs in CI: the real console script in a subprocess, a real working
folder, and what it left behind (the SQLite store and the SqliteSaver checkpoints)."""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import ToolMessage
from langgraph.checkpoint.sqlite import SqliteSaver
from otlp_receiver import OTLPReceiver, ReceivedSpan

import flagmw
from flagmw import FlagClient, SQLiteStore
from flagmw.examples.support_agent.agent import build_graph, load_registry
from flagmw.examples.support_agent.steps import DEMO_HELP, DEMO_STEPS
from flagmw.langgraph.keys import PIN_KEY

THREADS = {"acme-1", "globex-1", "globex-2", "globex-3", "acme-2", "acme-3", "globex-4"}


def flagmw_command() -> list[str]:
    script = Path(sys.executable).with_name("flagmw")
    return [str(script)] if script.exists() else [sys.executable, "-m", "flagmw.cli"]


def run_flagmw(
    *args: str, cwd: Path, env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLAGMW_", "OTEL_"))}
    env["COLUMNS"] = "200"  # wide enough that no verdict line wraps
    env.update(env_extra or {})
    return subprocess.run(
        [*flagmw_command(), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def flat(text: str) -> str:
    """Output with line breaks and runs of spaces collapsed (rich wraps long lines)."""
    return " ".join(text.split())


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    workdir = tmp_path_factory.mktemp("demo") / "work"
    proc = run_flagmw("demo", "--workdir", str(workdir), cwd=workdir.parent)
    return workdir, proc


def test_demo_exits_0(demo: tuple[Path, Any]) -> None:
    _, proc = demo
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "error" not in proc.stderr.lower(), proc.stderr


def test_demo_output_shows_the_pinned_resume(demo: tuple[Path, Any]) -> None:
    _, proc = demo
    out = flat(proc.stdout)
    pinned = re.search(r"its RunConfig \(rev 1, config_hash ([0-9a-f]{12})\) is pinned", out)
    assert pinned, out
    kept = re.search(
        r"resumed run kept pinned rev 1 while head is rev 2: same config_hash ([0-9a-f]{12}), "
        r"still served by gpt-4o; the new run got rev 2 \(claude-sonnet\)",
        out,
    )
    assert kept, out
    assert kept.group(1) == pinned.group(1)
    # the pinned-vs-head table: the resumed run on rev 1 with head rev 2, the new run on 2
    assert re.search(rf"globex-2 \(resumed\) │ 1 │ 2 │ {pinned.group(1)} │ gpt-4o ", out), out
    assert re.search(r"globex-3 \(new run\) │ 2 │ 2 │ [0-9a-f]{12} │ claude-sonnet ", out), out


def test_demo_output_shows_the_refusal_and_the_kill_expiry(demo: tuple[Path, Any]) -> None:
    _, proc = demo
    out = flat(proc.stdout)
    assert (
        "refusal ToolMessage: Tool 'refund' is disabled by flag tools.refund_api.enabled "
        "(kill ov-1: CRM webhook returns 500)"
    ) in out
    boundary = re.search(r"after step boundary (\d+)\); on-call, in another process", out)
    applied = re.search(r"step boundary (\d+) \(the next one\): tools.refund_api.enabled", out)
    assert boundary, out
    assert applied, out
    assert int(applied.group(1)) == int(boundary.group(1)) + 1
    assert "tools offered: kb_search, refund, escalate => kb_search, escalate" in out
    assert "ov-1 expired: the refund tool is back for new runs" in out
    assert "drained at step boundary" in out
    for line in ("Step 1.", "Step 9. What happened", "flagmw audit (oldest first)"):
        assert line in out


def test_demo_left_a_store_with_two_revs_and_the_oncall_kill(demo: tuple[Path, Any]) -> None:
    workdir, proc = demo
    assert proc.returncode == 0
    store = SQLiteStore(workdir / "flagmw.db")
    try:
        history = store.history(10)
        assert [(h.rev, h.parent_rev, h.author) for h in history] == [
            (2, 1, "ml-platform"),
            (1, None, "platform-team"),
        ]
        kills = store.audit(50, action="kill.set")
        refund_kill = [k for k in kills if "tools.refund_api.enabled" in k.target]
        assert len(refund_kill) == 1
        assert refund_kill[0].actor == "oncall"
        assert refund_kill[0].reason == "CRM webhook returns 500"
        [ov] = [
            o
            for o in store.list_overrides(include_ended=True)
            if o.key == "tools.refund_api.enabled"
        ]
        assert ov.expires_at - ov.created_at == pytest.approx(3.0, abs=0.01)
        assert ov.ended_at is None  # it expired by itself, nobody ended it
        drain = [o for o in store.list_overrides(include_ended=True) if o.key == "agent.enabled"]
        assert len(drain) == 1
        assert drain[0].ended_by == "oncall"
    finally:
        store.close()


def test_demo_left_checkpoints_with_one_pin_per_run(demo: tuple[Path, Any]) -> None:
    workdir, _ = demo
    conn = sqlite3.connect(workdir / "checkpoints.db", check_same_thread=False)
    client = FlagClient(load_registry(), SQLiteStore(workdir / "flagmw.db"))
    try:
        threads = {r[0] for r in conn.execute("SELECT DISTINCT thread_id FROM checkpoints")}
        assert threads == THREADS
        saver = SqliteSaver(conn)
        pins = {
            thread: sum(
                PIN_KEY in tup.metadata
                for tup in saver.list({"configurable": {"thread_id": thread}})
            )
            for thread in THREADS
        }
        assert pins == dict.fromkeys(THREADS, 1)  # drained and interrupted runs: still one
        # read them back as a worker would (any process, any graph object)
        graph = flagmw.wrap(build_graph(checkpointer=saver), client)
        pinned = {t: graph.get_pinned_config({"configurable": {"thread_id": t}}) for t in THREADS}
        assert pinned["globex-2"] is not None
        assert pinned["globex-2"].snapshot_rev == 1  # resumed after rev 2: still rev 1
        assert pinned["globex-2"]["model.primary"] == "gpt-4o"
        assert pinned["globex-3"] is not None
        assert pinned["globex-3"].snapshot_rev == 2
        assert pinned["globex-3"]["model.primary"] == "claude-sonnet"
        assert pinned["acme-1"] is not None
        assert pinned["acme-1"].context.tenant_id == "acme"
        # the refused refund is part of acme-2's history, as the model saw it
        state = saver.get_tuple({"configurable": {"thread_id": "acme-2"}})
        assert state is not None
        messages = state.checkpoint["channel_values"]["messages"]
        refused = [m for m in messages if isinstance(m, ToolMessage) and m.status == "error"]
        assert len(refused) == 1
        assert "tools.refund_api.enabled" in refused[0].content
    finally:
        client.close()
        conn.close()


def test_demo_refuses_a_workdir_that_holds_a_previous_demo(
    demo: tuple[Path, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from flagmw.examples.support_agent.demo import (
        main,  # in-process: the refusal comes before any run
    )

    workdir, _ = demo
    before = (workdir / "flagmw.db").stat().st_mtime_ns
    assert main(workdir=workdir) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("flagmw demo: error: ")
    assert "already exists" in lines[0]
    assert (workdir / "flagmw.db").stat().st_mtime_ns == before


def test_demo_exports_its_runs_over_otlp(tmp_path: Path) -> None:
    with OTLPReceiver() as rx:
        proc = run_flagmw(
            "demo", "--workdir", str(tmp_path / "w"), "--otlp-endpoint", rx.url, cwd=tmp_path
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
        rx.wait_for_span(lambda s: _thread(s) == "globex-4" and _resumed(s))
        spans = [s for s in rx.spans if s.name.startswith("invoke_agent")]
        received, url = len(rx.spans), rx.url
    by_thread: dict[str, list[ReceivedSpan]] = {}
    for s in spans:
        by_thread.setdefault(_thread(s), []).append(s)
    assert set(by_thread) == THREADS
    waiting = sorted(by_thread["globex-2"], key=_resumed)
    assert [_resumed(s) for s in waiting] == [False, True]
    assert {s.attributes["flagmw.snapshot_rev"] for s in waiting} == {1}
    assert waiting[1].links[0].span_id == waiting[0].span_id  # the resume links its start
    assert by_thread["globex-3"][0].attributes["flagmw.snapshot_rev"] == 2
    killed = by_thread["acme-2"][0]
    names = [e.name for e in killed.events]
    assert "flagmw.flag_changed" in names
    refused = [e for e in killed.events if e.name == "flagmw.tool_refused"]
    assert refused[0].attributes["flagmw.key"] == "tools.refund_api.enabled"
    assert refused[0].attributes["flagmw.reason"] == "CRM webhook returns 500"
    drained = [e.name for s in by_thread["globex-4"] for e in s.events]
    assert "flagmw.run_drained" in drained
    assert {s.resource.get("service.name") for s in spans} == {"flagmw-demo"}
    # what reached the runs is on their root spans (filterable), the pinned value kept
    kill_id = refused[0].attributes["flagmw.override_id"]
    assert kill_id in killed.attributes["flagmw.override_ids"]
    assert killed.attributes["flagmw.pinned_override_ids"] == []
    assert killed.attributes["flagmw.changed_keys"] == ["tools.refund_api.enabled"]
    assert killed.attributes["flagmw.change_count"] == 1
    assert killed.attributes["flagmw.effective.tools.refund_api.enabled.value"] is False
    assert killed.attributes["flagmw.flag.tools.refund_api.enabled.value"] is True
    first_drained = next(s for s in by_thread["globex-4"] if not _resumed(s))
    drain_event = next(e for e in first_drained.events if e.name == "flagmw.run_drained")
    assert (
        drain_event.attributes["flagmw.override_id"]
        in (first_drained.attributes["flagmw.override_ids"])
    )
    assert f"traces: {received} spans exported to {url}/v1/traces" in flat(proc.stdout)


def test_demo_says_when_its_traces_were_not_exported(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    proc = run_flagmw(
        "demo",
        "--workdir",
        str(tmp_path / "w"),
        "--otlp-endpoint",
        url,
        cwd=tmp_path,
        env_extra={"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "1"},  # give up quickly
    )
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr
    assert f"traces: warning: nothing accepts connections at {url}" in flat(proc.stdout)
    last = proc.stderr.strip().splitlines()[-1]
    assert re.fullmatch(
        rf"flagmw demo: error: traces were not exported: (\d+) of \1 spans could not be sent "
        rf"to {url}/v1/traces \(.+\); is the collector running and listening there\?",
        last,
    ), last
    assert "Traceback" not in proc.stderr
    # the story itself ran to its end
    assert "Done in" in proc.stdout


def _thread(span: ReceivedSpan) -> str:
    return str(span.attributes.get("gen_ai.conversation.id"))


def _resumed(span: ReceivedSpan) -> bool:
    return bool(span.attributes.get("flagmw.resumed"))


def test_demo_help_lists_every_step_and_imports_no_langgraph() -> None:
    for i, step in enumerate(DEMO_STEPS, 1):
        assert f"  {i}. {step}" in DEMO_HELP
    assert len(DEMO_STEPS) == 9
    code = (
        "import sys, flagmw.examples.support_agent.steps; "
        "assert not [m for m in sys.modules if m.startswith(('langgraph', 'langchain'))]"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_cli_demo_help_explains_each_step(tmp_path: Path) -> None:
    proc = run_flagmw("demo", "--help", cwd=tmp_path)
    assert proc.returncode == 0
    out = flat(proc.stdout)
    for step in DEMO_STEPS:
        assert flat(step)[:60] in out
