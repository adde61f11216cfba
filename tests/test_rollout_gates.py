"""Quality gates: threshold gates on offline results and recorded outcomes, test-suite
gates run with pytest against the version, located errors in the gates file, and gates
blocking a rollout's start (``flagmw gate check``, ``flagmw rollout start --gates``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flagmw import FlagRegistry, MemoryStore
from flagmw.cli import app
from flagmw.errors import ValidationError
from flagmw.rollout.controller import RolloutController
from flagmw.rollout.gates import check_gates, gate_callable, load_gates
from flagmw.rollout.stages import RolloutError
from flagmw.rollout.store import RolloutStore, open_rollout_store
from flagmw.rollout.versions import AgentVersion

GATES = """\
gates:
  - {name: offline quality, metric: offline_quality, op: ">=", threshold: 0.85}
  - {name: p95 latency, metric: p95_latency_ms, op: "<=", threshold: 1500, min_runs: 3}
  - {name: cost per run, metric: cost_per_run, op: "<=", threshold: 0.45, required: false}
  - {name: critical scenarios, pytest: critical.py}
"""
SUITE = """\
import os

def test_runs_against_the_version_under_gate():
    assert os.environ["FLAGMW_GATE_AGENT"] == "support-agent"
    assert os.environ["FLAGMW_GATE_VERSION"] == "{expected}"
"""


@pytest.fixture
def rs(registry: FlagRegistry) -> RolloutStore:
    store = open_rollout_store(MemoryStore())
    for version in ("v1.3.2", "v1.3.3"):
        v = AgentVersion.build(registry, "support-agent", version, {"loop.max_iterations": 5})
        store.publish_version(v, author="ana", at=0.0)
    return store


def _files(tmp_path: Path, expected: str = "v1.3.3") -> Path:
    (tmp_path / "critical.py").write_text(SUITE.replace("{expected}", expected))
    path = tmp_path / "quality_gates.yaml"
    path.write_text(GATES)
    return path


def _outcomes(rs: RolloutStore, version: str, latency: float, cost: float, env: str) -> None:
    rs.record_outcomes(
        {
            "at": float(i),
            "agent": "support-agent",
            "version": version,
            "outcome": "completed",
            "latency_ms": latency,
            "cost": cost,
            "environment": env,
        }
        for i in range(4)
    )


def test_threshold_and_suite_gates(rs: RolloutStore, tmp_path: Path) -> None:
    gates = load_gates(_files(tmp_path))
    rs.save_eval("support-agent", "v1.3.3", {"offline_quality": 0.87}, 1.0)
    _outcomes(rs, "v1.3.3", 1200.0, 0.5, "staging")
    _outcomes(rs, "v1.3.3", 9000.0, 0.1, "production")
    results = check_gates(rs, "support-agent", "v1.3.3", gates, environment="staging")
    got = [(r.gate.name, r.verdict, r.measured) for r in results]
    assert got == [
        ("offline quality", "pass", 0.87),
        ("p95 latency", "pass", 1200.0),
        ("cost per run", "fail", 0.5),
        ("critical scenarios", "pass", None),
    ]
    assert not any(r.blocking for r in results)  # the failing cost gate is optional
    assert results[1].detail == "4 recorded runs in staging"
    assert "1 passed" in results[3].detail
    # production's runs are slow: the latency gate fails there
    prod = check_gates(rs, "support-agent", "v1.3.3", gates, environment="production")
    assert prod[1].verdict == "fail"
    assert prod[1].measured == 9000.0


def test_a_missing_measurement_fails(rs: RolloutStore, tmp_path: Path) -> None:
    gates = load_gates(_files(tmp_path, expected="v1.3.2"))
    results = check_gates(rs, "support-agent", "v1.3.3", gates)
    assert [r.verdict for r in results] == ["fail", "fail", "fail", "fail"]
    assert results[0].detail.startswith("no measurement: 0 recorded runs")
    assert "1 failed" in results[3].detail  # the suite saw the wrong version
    failures = gate_callable(rs, gates)(None, "support-agent", "v1.3.3")
    assert len(failures) == 3
    assert failures[0].startswith("offline quality: no measurement")
    ctl = RolloutController(rs, gate=gate_callable(rs, gates))
    with pytest.raises(RolloutError, match=r"quality gates fail for support-agent v1\.3\.3"):
        ctl.start("support-agent", "v1.3.3", "v1.3.2", actor="ana")
    assert rs.list_rollouts() == []


def test_bad_gate_files_are_located(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_text(
        "gates:\n  - {name: a, metric: x, op: '=>', threshold: 1}\n"
        "  - {name: b, metric: y, threshold: high}\n  - {metric: z}\n"
    )
    with pytest.raises(ValidationError) as exc:
        load_gates(path)
    text = str(exc.value)
    assert "g.yaml:2" in text
    assert "g.yaml:3" in text
    assert "g.yaml:4" in text


def test_gate_check_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("FLAGMW_", "FF_")):
            monkeypatch.delenv(name)
    runner = CliRunner()

    def cli(*args: str) -> tuple[int, str, str]:
        r = runner.invoke(app, list(args), catch_exceptions=False)
        return r.exit_code, r.stdout, r.stderr

    assert cli("init")[0] == 0
    assert cli("publish", "flags.yaml", "-m", "first")[0] == 0
    for version in ("v1.3.2", "v1.3.3"):
        (tmp_path / f"{version}.yaml").write_text(
            f"agent: support-agent\nversion: {version}\nvalues: {{loop.max_iterations: 5}}\n"
        )
        assert cli("agent", "publish", f"{version}.yaml")[0] == 0
    _files(tmp_path)
    code, out, _ = cli("gate", "check", "support-agent", "v1.3.3")
    assert code == 1
    assert out.splitlines()[0].startswith("FAIL  offline quality: offline_quality >= 0.85")
    code, _, err = cli(
        "rollout", "start", "support-agent", "--candidate", "v1.3.3", "--baseline", "v1.3.2",
        "--gates", "quality_gates.yaml",
    )  # fmt: skip
    assert code != 0
    assert "quality gates fail" in err
    assert cli("gate", "record", "support-agent", "v1.3.3", "offline_quality=0.9")[0] == 0
    code, _, err = cli("gate", "record", "support-agent", "v1.3.3", "offline_quality=high")
    assert code != 0
    assert "not NAME=NUMBER" in err
    code, out, _ = cli("gate", "check", "support-agent", "v1.3.3", "--json")
    doc = json.loads(out)
    assert doc[0]["verdict"] == "pass"
    assert doc[0]["measured"] == 0.9
