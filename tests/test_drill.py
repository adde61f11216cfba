"""``flagmw drill`` (issue 8 §4): a short real drill — worker processes running a wrapped
LangGraph agent against a SQLite store file, kills from the coordinator — reports every
field, finds no tool execution after enforcement, leaves no override behind, and refuses
a missing store or a flag that cannot be drilled."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flagmw import FlagClient, FlagRegistry, SQLiteStore
from flagmw.drill import DrillError, run_drill

FLAGS = {
    "tools.refund_api.enabled": {"type": "bool", "default": True, "binding": "hot", "owner": "t"},
    "loop.max_iterations": {"type": "int", "default": 8, "owner": "t"},
}


@pytest.fixture
def store(tmp_path: Path) -> Path:
    db = tmp_path / "flagmw.db"
    with SQLiteStore(db, create=True) as s:
        FlagClient(FlagRegistry.from_dict({"flags": FLAGS}), s).publish(
            {}, author="ops", message="first"
        )
    return db


def test_a_drill_measures_every_worker_and_no_tool_runs_after_enforcement(store: Path) -> None:
    report = run_drill(str(store), workers=2, repetitions=3, tool_latency=0.002, settle=0.1)
    doc = report.to_dict()
    assert doc["executions_after_enforcement"] == 0
    assert doc["workers"] == 2
    assert doc["repetitions"] == 3
    assert len(doc["per_worker"]) == 2
    for w in doc["per_worker"]:
        for name in ("knows", "enforced"):
            for q in ("p50", "p95", "p99", "max"):
                assert w[f"{name}_{q}_ms"] >= 0.0
    assert doc["step_spacing_ms_median"] is not None
    assert doc["step_spacing_ms_median"] > 0
    with SQLiteStore(store) as s:
        drills = [o for o in s.list_overrides(include_ended=True) if o.reason == "flagmw drill"]
        assert len(drills) == 3
        assert all(o.ended_at is not None for o in drills)  # nothing left in force
        actions = [e.action for e in s.audit(limit=100)]
        assert actions.count("kill.set") == 3
        assert actions.count("kill.end") == 3


def test_the_command_refuses_what_it_cannot_drill(store: Path, tmp_path: Path) -> None:
    with pytest.raises(DrillError, match="flagmw init"):
        run_drill(str(tmp_path / "missing.db"))
    assert not (tmp_path / "missing.db").exists()
    with pytest.raises(DrillError, match="not a hot bool flag"):
        run_drill(str(store), key="loop.max_iterations")
    script = Path(sys.executable).with_name("flagmw")
    run = [str(script)] if script.is_file() else [sys.executable, "-m", "flagmw.cli"]
    done = subprocess.run(
        [*run, "--store", str(store), "drill", "--repetitions", "2", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["executions_after_enforcement"] == 0
