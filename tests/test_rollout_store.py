"""The rollout store contract on every backend of ``tests/store_kinds.py``: immutable
versions, compare-and-set rollouts, the outcome log with retention, the audit log, and
the SQLite/PostgreSQL schema migration recorded once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from store_kinds import STORE_KINDS

from flagmw import FlagRegistry, Store
from flagmw.errors import NotFoundError, ValidationError
from flagmw.rollout.store import (
    RolloutConflictError,
    RolloutStore,
    VersionConflictError,
    open_rollout_store,
)
from flagmw.rollout.versions import AgentVersion, diff_versions


@pytest.fixture(params=sorted(STORE_KINDS))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(kind: str, tmp_path: Path) -> Iterator[Store]:
    s, cleanup = STORE_KINDS[kind](tmp_path)
    yield s
    cleanup()


@pytest.fixture
def rs(store: Store) -> Iterator[RolloutStore]:
    r = open_rollout_store(store)
    yield r
    r.close()


def _v(registry: FlagRegistry, version: str, max_iter: int) -> AgentVersion:
    return AgentVersion.build(
        registry,
        "support-agent",
        version,
        {"model.primary": "gpt-4o-mini", "loop.max_iterations": max_iter},
        prompt_text="You are a support agent.",
        prompt_version="p7",
        message="test",
    )


def test_versions_are_immutable(rs: RolloutStore, registry: FlagRegistry) -> None:
    v1 = rs.publish_version(_v(registry, "v1", 5), author="ana", at=100.0)
    assert (v1.author, v1.created_at) == ("ana", 100.0)
    again = rs.publish_version(_v(registry, "v1", 5), author="bob", at=200.0)
    assert again.author == "ana", "an identical publish returns the stored version"
    with pytest.raises(VersionConflictError, match="already published"):
        rs.publish_version(_v(registry, "v1", 6), author="bob", at=200.0)
    rs.publish_version(_v(registry, "v2", 6), author="bob", at=300.0)
    got = rs.get_version("support-agent", "v2")
    assert got.values["loop.max_iterations"] == 6
    assert got.prompt is not None
    assert got.prompt["hash"].startswith("sha256:")
    assert [v.version for v in rs.list_versions("support-agent")] == ["v1", "v2"]
    with pytest.raises(NotFoundError, match=r"published: v1, v2"):
        rs.get_version("support-agent", "v9")
    d = diff_versions(v1, got)
    assert d.changed == {"loop.max_iterations": (5, 6)}
    assert not d.added
    assert not d.prompt
    assert [e["action"] for e in rs.audit()] == ["version.publish", "version.publish"]


def test_rollouts_are_compare_and_set(rs: RolloutStore) -> None:
    doc = rs.save_rollout({"name": "r1", "share": 1}, 0)
    assert doc["seq"] == 1
    with pytest.raises(RolloutConflictError):
        rs.save_rollout({"name": "r1", "share": 5}, 0)
    rs.save_rollout({"name": "r1", "share": 5}, 1)
    with pytest.raises(RolloutConflictError):
        rs.save_rollout({"name": "r1", "share": 25}, 1)
    got = rs.get_rollout("r1")
    assert got == {"name": "r1", "share": 5, "seq": 2}
    assert [d["name"] for d in rs.list_rollouts()] == ["r1"]
    assert rs.get_rollout("nope") is None


def test_outcome_log_window_and_retention(rs: RolloutStore) -> None:
    rs.record_outcomes(
        [{"at": float(t), "run_id": f"r{t}", "outcome": "completed"} for t in range(10)]
    )
    rs.record_feedback("r3", 0.5, "meh", 3.0)
    assert [o["run_id"] for o in rs.outcomes(since=7.0)] == ["r7", "r8", "r9"]
    assert [o["run_id"] for o in rs.outcomes(limit=2)] == ["r8", "r9"]
    assert rs.feedback()[0]["comment"] == "meh"
    assert rs.prune(before=5.0) == 6  # 5 outcomes and 1 feedback
    assert len(rs.outcomes()) == 5
    assert rs.feedback() == []


def test_kills_replace_by_ref_and_tenant(rs: RolloutStore) -> None:
    rs.save_kill({"ref": "a@v1", "tenant": None, "active": True, "reason": "x"})
    rs.save_kill({"ref": "a@v1", "tenant": None, "active": False, "reason": "y"})
    rs.save_kill({"ref": "a@v1", "tenant": "acme", "active": True, "reason": "z"})
    kills = sorted(rs.kills(), key=lambda k: k["tenant"] or "~")
    assert [(k["tenant"], k["active"]) for k in kills] == [("acme", True), (None, False)]


def test_bad_version_files_are_located(registry: FlagRegistry, tmp_path: Path) -> None:
    from flagmw.rollout.versions import load_version

    f = tmp_path / "v1.yaml"
    f.write_text("agent: a\nversion: v1\nvalues:\n  loop.max_iterations: 99\n  model.primry: x\n")
    with pytest.raises(ValidationError) as exc:
        load_version(registry, f)
    text = str(exc.value)
    assert "v1.yaml:4" in text
    assert "v1.yaml:5" in text
    assert "model.primary" in text
    f.write_text(
        "agent: a\nversion: v1\nvalues: {loop.max_iterations: 3}\n"
        "prompt: {version: p, file: ../../etc/passwd}\n"
    )
    with pytest.raises(ValidationError, match="outside the version's folder"):
        load_version(registry, f)


def test_sqlite_migration_runs_once(tmp_path: Path) -> None:
    import sqlite3

    from flagmw import SQLiteStore

    s = SQLiteStore(tmp_path / "m.db", create=True)
    a = open_rollout_store(s)
    b = open_rollout_store(s)  # a second open finds the schema in place
    a.save_rollout({"name": "x"}, 0)
    assert b.get_rollout("x") is not None
    a.close()
    b.close()
    s.close()
    with sqlite3.connect(tmp_path / "m.db") as conn:
        rows = conn.execute("SELECT k, v FROM flagmw_rollout_meta").fetchall()
    assert rows == [("schema_version", 1)]
