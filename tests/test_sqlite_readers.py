"""The SQLite store's schema is set up once (issue 8 §1): opening an up-to-date store
takes no write lock, so a writer holding the lock never blocks readers — new workers,
``flagmw status`` / ``history`` — and a version-1 store is migrated in place."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flagmw import SQLiteStore
from flagmw.stores._sqlite_schema import SCHEMA_VERSION


def _store_with_a_rev(path: Path) -> None:
    from flagmw import FlagClient, FlagRegistry

    registry = FlagRegistry.from_dict(
        {"flags": {"agent.enabled": {"type": "bool", "default": True, "owner": "t"}}}
    )
    with SQLiteStore(path, create=True) as store:
        FlagClient(registry, store).publish({}, author="a", message="first")


def test_readers_are_not_blocked_by_a_writer_holding_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "flagmw.db"
    _store_with_a_rev(path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sqlite3, sys, time
                conn = sqlite3.connect({str(path)!r}, isolation_level=None)
                conn.execute("BEGIN IMMEDIATE")  # the write lock, held
                print("locked", flush=True)
                sys.stdin.readline()
                conn.execute("ROLLBACK")
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        # a new store object (a new worker) opens and reads; a write-lock wait would fail
        # with "database is locked" after this 0.2 s timeout
        with SQLiteStore(path, timeout=0.2) as reader:
            head = reader.head()
            assert head is not None
            assert head.rev == 1
            assert reader.history()[0].rev == 1
        script = Path(sys.executable).with_name("flagmw")
        run = [str(script)] if script.is_file() else [sys.executable, "-m", "flagmw.cli"]
        for cmd in (["history", "--json"], ["audit", "--json"]):
            done = subprocess.run(
                [*run, "--store", str(path), *cmd], capture_output=True, text=True, timeout=60
            )
            assert done.returncode == 0, (cmd, done.stderr)
        # a writer does wait for the lock, and says so when it cannot get it
        with SQLiteStore(path, timeout=0.2) as writer, pytest.raises(Exception, match="lock"):
            writer.end_override("ov-1", actor="a", reason="r", at=0.0)
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=30)


def test_a_version_1_store_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "flagmw.db"
    _store_with_a_rev(path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP TRIGGER overrides_append_only_delete")
    conn.execute("DROP TRIGGER overrides_append_only_update")
    conn.execute("UPDATE meta SET value=1 WHERE key='schema_version'")
    conn.close()
    with SQLiteStore(path) as store:
        assert store.head() is not None
        from flagmw import FlagClient, FlagRegistry

        registry = FlagRegistry.from_dict(
            {"flags": {"agent.enabled": {"type": "bool", "default": True, "owner": "t"}}}
        )
        FlagClient(registry, store).kill("agent.enabled", reason="r", actor="a")
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        version = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        assert version == (SCHEMA_VERSION,)
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM overrides")
    finally:
        conn.close()


def test_a_read_only_store_file_is_readable_and_refuses_writes_in_one_line(
    tmp_path: Path,
) -> None:
    """Issue 9 item 10: a 0444 (here: immutable, which binds root too) store file can be
    read by every read command; a write fails with one line, no traceback."""
    import shutil

    path = tmp_path / "flagmw.db"
    _store_with_a_rev(path)
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(path)]).returncode != 0:
        pytest.skip("chattr +i is not available on this file system")
    try:
        script = Path(sys.executable).with_name("flagmw")
        run = [str(script)] if script.is_file() else [sys.executable, "-m", "flagmw.cli"]
        for cmd in (["history"], ["status"], ["audit"], ["overrides"]):
            done = subprocess.run(
                [*run, "--store", str(path), *cmd], capture_output=True, text=True, timeout=60
            )
            assert done.returncode == 0, (cmd, done.stderr)
        done = subprocess.run(
            [*run, "--store", str(path), "kill", "agent.enabled", "--reason", "r"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2
        assert len(done.stderr.strip().splitlines()) == 1
        assert "readonly" in done.stderr
        assert "Traceback" not in done.stderr
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)
