"""``flagmw promote``: a snapshot and an agent version go from a staging store to a
production store (two real SQLite files; production also on PostgreSQL and Redis) only
when the quality gates pass on the runs recorded in staging — real wrapped LangGraph
runs of a staging client recorded by an OutcomeRecorder. A failing gate writes nothing
anywhere; a promotion keeps the content hash, names its source and is audited on both
sides."""

from __future__ import annotations

import contextlib
import json
import operator
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph
from store_kinds import STORE_KINDS
from typer.testing import CliRunner

import flagmw
from flagmw import FlagClient, FlagRegistry, SQLiteStore
from flagmw.cli.app import app
from flagmw.core.context import EvaluationContext
from flagmw.errors import NotFoundError
from flagmw.rollout.gates import load_gates
from flagmw.rollout.outcomes import OutcomeRecorder
from flagmw.rollout.promote import PromotionRefusedError, promote_snapshot, promote_version
from flagmw.rollout.store import open_rollout_store
from flagmw.rollout.versions import AgentVersion

GATES = """\
gates:
  - {name: error rate, metric: error_rate, op: "<=", threshold: 0.1, min_runs: 10}
  - {name: p95 latency, metric: p95_latency_ms, op: "<=", threshold: 10000, min_runs: 10}
"""


class S(TypedDict):
    fail: bool
    log: Annotated[list[str], operator.add]


def _graph(client: FlagClient, rec: OutcomeRecorder) -> Any:
    def work(state: S) -> dict[str, Any]:
        rc = flagmw.current()
        if state.get("fail"):
            raise RuntimeError("staging regression")
        return {"log": [f"{rc['model.primary']} max={rc['loop.max_iterations']}"]}

    b = StateGraph(S)
    b.add_node("work", work)
    b.add_edge(START, "work")
    return flagmw.wrap(
        b.compile(checkpointer=InMemorySaver(), name="support-agent"), client, observers=[rec]
    )


def _staging_traffic(client: FlagClient, runs: int, failing: int = 0) -> None:
    """Real runs on the staging client, recorded in the staging store."""
    rec = OutcomeRecorder(open_rollout_store(client.store), flush_interval=3600)
    graph = _graph(client, rec)
    for i in range(runs):
        cfg = {"configurable": {"thread_id": f"t-{i}", "tenant_id": f"tenant-{i % 3}"}}
        with contextlib.suppress(RuntimeError):  # a failed run is recorded as failed
            graph.invoke({"fail": i < failing, "log": []}, cfg)
    rec.close()
    rec.store.close()


@pytest.fixture
def staging(
    tmp_path: Path, registry: FlagRegistry, snapshot_document: dict[str, Any]
) -> Iterator[FlagClient]:
    client = FlagClient(registry, SQLiteStore(tmp_path / "staging.db", create=True),
                        environment="staging")  # fmt: skip
    client.publish(snapshot_document, author="ana", message="base")
    doc = dict(snapshot_document, values={"loop.max_iterations": 5})
    client.publish(doc, author="ana", message="cap the loop at 5")
    rs = open_rollout_store(client.store)
    v = AgentVersion.build(registry, "support-agent", "v1.3.3", {"model.primary": "gpt-4o-mini"},
                           message="mini first")  # fmt: skip
    rs.publish_version(v, author="ana", at=0.0)
    rs.close()
    yield client
    client.close()


@pytest.fixture
def gates(tmp_path: Path) -> Path:
    path = tmp_path / "quality_gates.yaml"
    path.write_text(GATES)
    return path


def _prod(tmp_path: Path) -> SQLiteStore:
    return SQLiteStore(tmp_path / "prod.db", create=True)


def test_a_failing_gate_refuses_and_writes_nothing(
    staging: FlagClient, tmp_path: Path, gates: Path
) -> None:
    _staging_traffic(staging, 20, failing=5)  # 25 % errors on rev 2 in staging
    prod = _prod(tmp_path)
    src_audit = open_rollout_store(staging.store).audit()
    with pytest.raises(PromotionRefusedError, match="error rate") as exc:
        promote_snapshot(staging.store, prod, load_gates(gates), actor="ana")
    [err, lat] = exc.value.results
    assert (err.verdict, err.measured) == ("fail", 0.25)
    assert err.detail == "20 recorded runs on rev 2"
    assert lat.verdict == "pass"
    with pytest.raises(PromotionRefusedError):
        promote_version(staging.store, prod, "support-agent", "v1.3.3", load_gates(gates),
                        actor="ana")  # fmt: skip
    assert prod.head() is None
    assert prod.audit() == []
    prs = open_rollout_store(prod)
    assert prs.list_versions() == []
    assert prs.audit() == []
    assert open_rollout_store(staging.store).audit() == src_audit
    prs.close()
    prod.close()


def test_promote_a_snapshot_and_a_version_end_to_end(
    staging: FlagClient, tmp_path: Path, gates: Path, registry: FlagRegistry
) -> None:
    _staging_traffic(staging, 12)
    prod = _prod(tmp_path)
    spec = load_gates(gates)
    res = promote_snapshot(staging.store, prod, spec, actor="ana")
    src_info = staging.store.get_snapshot(2).info
    assert (res.written, res.target_rev, res.ref) == (True, 1, "rev 2")
    head = prod.head()
    assert head is not None
    assert head.content_hash == src_info.content_hash == res.content_hash
    assert head.author == "ana"
    assert head.message == f"promoted from {staging.store.name} rev 2: cap the loop at 5"
    # production serves the promoted content
    with FlagClient(registry, SQLiteStore(tmp_path / "prod.db")) as live:
        assert live.resolve(EvaluationContext(tenant_id="x"))["loop.max_iterations"] == 5
    # promoting the same rev again writes nothing
    again = promote_snapshot(staging.store, prod, spec, actor="ana")
    assert (again.written, again.target_rev) == (False, 1)
    assert len(prod.history()) == 1
    # the version: gates on its staging runs, the same artifact in production
    with pytest.raises(PromotionRefusedError, match="error rate"):  # no run of it yet
        promote_version(staging.store, prod, "support-agent", "v1.3.3", spec, actor="ana")
    _assigned_traffic(staging, 12)
    vres = promote_version(staging.store, prod, "support-agent", "v1.3.3", spec, actor="bo")
    assert vres.written
    prs, srs = open_rollout_store(prod), open_rollout_store(staging.store)
    promoted, original = (
        prs.get_version("support-agent", "v1.3.3"),
        srs.get_version("support-agent", "v1.3.3"),
    )
    assert promoted.content_hash == original.content_hash == vres.content_hash
    assert (promoted.values, promoted.message, promoted.author) == (
        original.values, "mini first", "bo",
    )  # fmt: skip
    # audited on both sides, with the gates' numbers
    src = [e for e in srs.audit() if e["action"].startswith("promote.")]
    dst = [e for e in prs.audit() if e["action"].startswith("promote.")]
    assert [e["action"] for e in src] == [e["action"] for e in dst] == [
        "promote.snapshot", "promote.snapshot", "promote.version",
    ]  # fmt: skip
    assert src[0]["reason"] == f"promoted to {prod.name} rev 1"
    assert src[1]["reason"] == f"promoted to {prod.name} rev 1 (unchanged)"
    assert dst[0]["reason"] == f"from {staging.store.name} rev 2"
    assert dst[0]["details"]["gates"][0]["measured"] == 0.0
    assert dst[2]["target"] == "support-agent@v1.3.3"
    # production's flag store audits the publish itself
    assert [a.action for a in prod.audit()] == ["publish"]
    prs.close()
    srs.close()
    prod.close()


def _assigned_traffic(client: FlagClient, runs: int) -> None:
    """Runs of v1.3.3 in staging (a rollout at 100 % assigns it)."""
    from flagmw.rollout.controller import RolloutController
    from flagmw.rollout.runtime import attach

    rs = open_rollout_store(client.store)
    base = AgentVersion.build(
        client.registry, "support-agent", "v1.3.2", {"model.primary": "gpt-4o"}
    )
    rs.publish_version(base, author="ana", at=0.0)
    RolloutController(rs).start("support-agent", "v1.3.3", "v1.3.2", "100", actor="ana")
    rt = attach(client, rs, background=False)
    _staging_traffic(client, runs)
    rt.close()
    rs.close()


def test_a_version_that_does_not_fit_production_is_refused(
    staging: FlagClient, tmp_path: Path, gates: Path, snapshot_document: dict[str, Any]
) -> None:
    _assigned_traffic(staging, 12)
    prod = _prod(tmp_path)
    # production's registry knows model.primary without gpt-4o-mini
    narrow = FlagRegistry.from_dict(
        {"flags": {"model.primary": {"type": "enum", "choices": ["gpt-4o"], "default": "gpt-4o"}}}
    )
    FlagClient(narrow, prod).publish({}, author="ops", message="prod base")
    with pytest.raises(PromotionRefusedError, match="does not fit the production registry"):
        promote_version(staging.store, prod, "support-agent", "v1.3.3", load_gates(gates),
                        actor="ana")  # fmt: skip
    prs = open_rollout_store(prod)
    assert prs.list_versions() == []
    prs.close()
    with pytest.raises(NotFoundError):
        promote_version(staging.store, prod, "support-agent", "v9", load_gates(gates), actor="a")
    prod.close()


@pytest.mark.parametrize("kind", ["postgres", "redis"])
def test_promote_to_a_server_store(
    kind: str, staging: FlagClient, tmp_path: Path, gates: Path
) -> None:
    prod, cleanup = STORE_KINDS[kind](tmp_path)
    try:
        _assigned_traffic(staging, 12)
        spec = load_gates(gates)
        res = promote_snapshot(staging.store, prod, spec, actor="ana")
        head = prod.head()
        assert head is not None
        assert (
            head.content_hash == res.content_hash == staging.store.get_snapshot(2).info.content_hash
        )
        promote_version(staging.store, prod, "support-agent", "v1.3.3", spec, actor="ana")
        prs = open_rollout_store(prod)
        assert [v.ref for v in prs.list_versions()] == ["support-agent@v1.3.3"]
        assert [e["action"] for e in prs.audit()] == [
            "promote.snapshot", "version.publish", "promote.version",
        ]  # fmt: skip
        prs.close()
    finally:
        cleanup()


def _cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_the_command_line_refuses_then_promotes(
    staging: FlagClient, tmp_path: Path, gates: Path
) -> None:
    _staging_traffic(staging, 10, failing=3)
    prod = _prod(tmp_path)
    prod.close()
    src, dst = str(tmp_path / "staging.db"), str(tmp_path / "prod.db")
    bad = _cli("--actor", "ana", "promote", "snapshot", "--from", src, "--to", dst,
               "--gates", str(gates))  # fmt: skip
    assert bad.exit_code == 1, bad.output
    lines = bad.output.splitlines()
    assert (
        lines[0] == "FAIL  error rate: error_rate <= 0.1, measured 0.3 (10 recorded runs on rev 2)"
    )
    assert lines[1].startswith("PASS  p95 latency: p95_latency_ms <= 10000, measured ")
    assert lines[2].startswith("refused: rev 2 of sqlite:")
    assert "nothing was written" in lines[2]
    with SQLiteStore(dst) as p:
        assert p.head() is None
    _staging_traffic(staging, 100)  # 3 errors in 110 runs: 2.7 %
    ok = _cli("--actor", "ana", "--store", src, "promote", "snapshot", "--to", dst,
              "--gates", str(gates), "--rev", "2", "--json")  # fmt: skip
    assert ok.exit_code == 0, ok.output
    doc = json.loads(ok.output)
    assert doc["promoted"] is True
    assert (doc["written"], doc["target_rev"], doc["ref"]) == (True, 1, "rev 2")
    assert [g["verdict"] for g in doc["gates"]] == ["pass", "pass"]
    with SQLiteStore(dst) as p:
        head = p.head()
        assert head is not None
        assert head.content_hash == doc["content_hash"]
    v = _cli("--store", src, "promote", "version", "support-agent", "v1.3.3", "--to", dst,
             "--gates", str(gates))  # fmt: skip
    assert v.exit_code == 1  # no staging run of v1.3.3
    assert "FAIL  error rate" in v.output
    same = _cli("--store", src, "promote", "snapshot", "--to", src, "--gates", str(gates))
    assert same.exit_code == 2
    assert "the same store" in same.output
    missing = _cli("--store", src, "promote", "snapshot", "--to", str(tmp_path / "nope.db"),
                   "--gates", str(gates))  # fmt: skip
    assert missing.exit_code == 2
    assert "no flagmw store" in missing.output
    assert "Traceback" not in missing.output
    for rev in ("0", "-3", "99999999999999999999"):  # untrusted revs: a located error
        huge = _cli("--store", src, "promote", "snapshot", "--to", dst, "--gates", str(gates),
                    "--rev", rev)  # fmt: skip
        assert huge.exit_code == 2, huge.output
        assert f"no snapshot rev {rev} in sqlite:" in huge.output
