"""``flagmw agent`` and ``flagmw rollout`` / ``kill-version`` on a real SQLite store."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flagmw import SQLiteStore
from flagmw.cli import app
from flagmw.rollout.store import open_rollout_store

V132 = "agent: support-agent\nversion: v1.3.2\nmessage: current\nvalues:\n  model.primary: gpt-4o\n"
V133 = (
    "agent: support-agent\nversion: v1.3.3\nmessage: mini first\nvalues:\n"
    "  model.primary: gpt-4o-mini\n  loop.max_iterations: 6\n"
    "prompt:\n  version: refund-v7\n  file: refund-v7.txt\n"
)


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("FLAGMW_", "FF_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("FLAGMW_ACTOR", "ana")
    runner = CliRunner()

    def invoke(*args: str) -> tuple[int, str, str]:
        r = runner.invoke(app, list(args), catch_exceptions=False)
        return r.exit_code, r.stdout, r.stderr

    assert invoke("init")[0] == 0
    assert invoke("publish", "flags.yaml", "-m", "first")[0] == 0
    agents = tmp_path / "agents" / "support-agent"
    agents.mkdir(parents=True)
    (agents / "v1.3.2.yaml").write_text(V132)
    (agents / "v1.3.3.yaml").write_text(V133)
    (agents / "refund-v7.txt").write_text("You are a careful support agent.")
    return invoke


def test_agent_versions_publish_list_diff(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("agent", "publish", "agents/support-agent/v1.3.2.yaml")
    assert code == 0
    assert out.startswith("published support-agent@v1.3.2 (1 flags)")
    assert cli("agent", "publish", "agents/support-agent/v1.3.3.yaml")[0] == 0
    code, out, _ = cli("agent", "versions", "--json")
    rows = json.loads(out)
    assert [(r["version"], r["author"]) for r in rows] == [("v1.3.2", "ana"), ("v1.3.3", "ana")]
    assert rows[1]["prompt"]["version"] == "refund-v7"
    code, out, _ = cli("agent", "diff", "v1.3.2", "v1.3.3")
    assert code == 0
    assert '~ model.primary: "gpt-4o" → "gpt-4o-mini"' in out
    assert "+ loop.max_iterations: 6" in out
    assert "~ prompt: - → refund-v7" in out
    # immutable: the same name with other content is refused, nothing changes
    bad = tmp_path / "agents" / "support-agent" / "v1.3.3.yaml"
    bad.write_text(V133.replace("6", "7"))
    code, _, err = cli("agent", "publish", str(bad))
    assert code != 0
    assert "already published with other content" in err
    # a value that does not fit its flag: located, nothing published
    bad.write_text(V133.replace("v1.3.3", "v1.3.4").replace("6", "99"))
    code, _, err = cli("agent", "publish", str(bad))
    assert code == 1
    assert "v1.3.3.yaml:6" in err
    assert "Traceback" not in err
    assert len(json.loads(cli("agent", "versions", "--json")[1])) == 2


def test_rollout_commands(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for v in ("v1.3.2", "v1.3.3"):
        assert cli("agent", "publish", f"agents/support-agent/{v}.yaml")[0] == 0
    code, out, err = cli(
        "rollout", "start", "support-agent", "--candidate", "v1.3.3", "--baseline", "v1.3.2",
        "--stages", "5,25,100", "--min-duration", "0", "--min-runs", "20",
        "--guardrail", "error_rate <= baseline + 0.02",
    )  # fmt: skip
    assert code == 0, err
    assert "stage 5 % of tenants" in out
    code, _, err = cli("rollout", "start", "support-agent", "--candidate", "v1.3.3",
                       "--baseline", "v1.3.2", "--stages", "50,5")  # fmt: skip
    assert code != 0
    assert err.count("\n") == 1
    assert "active rollout" in err
    # scripted outcomes: the candidate fails 30 % of its runs
    store = SQLiteStore(tmp_path / "flagmw.db")
    rs = open_rollout_store(store)
    rs.record_outcomes(
        {
            "at": 1.0e12 + i,
            "rollout": "support-agent-1.3.3",
            "stage": 5,
            "arm": "candidate" if i % 20 == 0 else "baseline",
            "version": "v1.3.3" if i % 20 == 0 else "v1.3.2",
            "tenant": f"t{i}",
            "outcome": "failed" if i % 20 == 0 and i % 60 == 0 else "completed",
            "latency_ms": 300.0,
        }
        for i in range(600)
    )
    rs.close()
    store.close()
    code, out, _ = cli("rollout", "tick")
    assert code == 0
    assert out.startswith("support-agent-1.3.3: rollback (share 0 %): error rate 33.3 % > ")
    assert "baseline 0.0 % + 2 points over 30 runs" in out
    code, out, _ = cli("rollout", "status", "--plot", "p.png")
    assert code == 0
    assert "rolled_back" in out
    assert "plot written to p.png" in out
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, out, _ = cli("rollout", "audit")
    assert "rollout.rollback" in out
    assert "error rate 33.3 %" in out
    code, _, err = cli("rollout", "advance", "support-agent-1.3.3")
    assert code != 0
    assert "cannot advance rollout 'support-agent-1.3.3': it is rolled_back" in err
    code, _, err = cli("rollout", "pause", "nope", "--reason", "x")
    assert code != 0
    assert "no rollout 'nope' (rollouts: support-agent-1.3.3)" in err
    code, out, _ = cli("kill-version", "support-agent", "v1.3.3", "--reason", "bad refunds")
    assert code == 0
    assert out.strip() == "killed support-agent v1.3.3 globally"
    code, _, err = cli("kill-version", "support-agent", "v9", "--reason", "x")
    assert code != 0
    assert "no version 'v9'" in err


def test_publish_canary_and_its_rollout_commands(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Issue 12 §3: `flagmw publish --canary` publishes a canary rev and starts its
    rollout; a plain publish meanwhile exits 3 naming it; the rollout commands operate it;
    an abort publishes the baseline's content as a plain rev."""
    flags = tmp_path / "flags.yaml"
    text = flags.read_text()
    canary_file = tmp_path / "canary.yaml"
    canary_file.write_text(text.replace("model.fallbacks: [gpt-4o-mini]", "model.fallbacks: []"))
    code, out, err = cli(
        "publish", "canary.yaml", "-m", "no fallbacks", "--canary", "1,10,100", "--unit",
        "tenant", "--min-runs", "5", "--min-duration", "0",
        "--guardrail", "error_rate <= baseline + 0.02",
    )  # fmt: skip
    assert code == 0, err
    assert "published rev 2 (parent rev 1)" in out
    assert "canary: rev 2 over rev 1, rollout config-rev-2 at stage 1 % of tenants" in out
    code, out, err = cli("publish", "canary.yaml", "-m", "again", "--json", "--canary", "5,100")
    assert code == 3
    assert "head rev 2 is a config canary over rev 1 (rollout config-rev-2)" in err
    assert "flagmw rollout abort config-rev-2" in err
    assert err.count("\n") == 1
    code, _, err = cli("publish", "flags.yaml", "-m", "plain")
    assert code == 3
    assert "config-rev-2" in err
    assert "Traceback" not in err
    code, out, _ = cli("history")
    assert "canary over 1" in out
    code, out, _ = cli("status")
    assert "canary rev" in out
    code, out, _ = cli("rollout", "status", "config-rev-2", "--no-plot")
    assert code == 0
    assert "config-rev-2: rev-2 over rev-1 for snapshot — running, candidate share 1 %" in out
    code, out, _ = cli("rollout", "tick")
    assert out.startswith("config-rev-2: wait (share 1 %)")
    code, out, err = cli("rollout", "abort", "config-rev-2", "--reason", "not now")
    assert code == 0, err
    assert "aborted, candidate share 0 %" in out
    code, out, _ = cli("history", "--json")
    head = json.loads(out)["snapshots"][0]
    assert (head["rev"], head["action"], head["rollback_of"]) == (3, "rollback", 1)
    code, out, err = cli("publish", "canary.yaml", "-m", "later", "--canary", "50,100")
    assert code == 0, err
    assert "rollout config-rev-4 at stage 50 %" in out
    code, _, err = cli("publish", "canary.yaml", "-m", "x", "--canary", "1,10", "--overlays")
    assert code != 0
    assert "--overlays" in err
