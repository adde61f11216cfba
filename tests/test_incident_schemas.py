"""The incident commands load the registry with ``check_schemas=False`` (issue 7 §5): a
``json`` flag's broken JSON schema in ``flags.yaml`` does not stop the kill of another
flag, fails an override of that flag with a located error (writing nothing), and is still
reported by ``flagmw validate``. Real ``flagmw`` processes on a real SQLite store.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flagmw import SQLiteStore

_MAIN = "from flagmw.cli import main; main()"
GOOD = "schema: {type: array, items: {type: string}}"
BROKEN = "schema: {type: array, items: {type: 12}}"


def _flagmw(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _MAIN, *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    """A store published from the starter flags.yaml, whose model.fallbacks schema was
    broken afterwards (an edit in progress)."""
    for args in (["init", "."], ["publish", "flags.yaml", "--message", "first"]):
        assert _flagmw(tmp_path, *args).returncode == 0
    text = (tmp_path / "flags.yaml").read_text()
    assert GOOD in text
    (tmp_path / "flags.yaml").write_text(text.replace(GOOD, BROKEN))
    return tmp_path


def _overrides(folder: Path) -> list[tuple[str, object]]:
    store = SQLiteStore(folder / "flagmw.db")
    try:
        return [(o.key, o.value) for o in store.list_overrides(include_ended=True)]
    finally:
        store.close()


def test_a_kill_works_whatever_an_unrelated_schema_says(broken: Path) -> None:
    done = _flagmw(broken, "kill", "tools.refund_api.enabled", "--reason", "r", "--ttl", "1m")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("kill ov-1: tools.refund_api.enabled = false")
    assert "Traceback" not in done.stderr
    assert _overrides(broken) == [("tools.refund_api.enabled", False)]


def test_an_override_of_the_flag_fails_located_and_writes_nothing(broken: Path) -> None:
    bad_value = _flagmw(broken, "override", "loop.max_iterations", "99", "--reason", "r")
    done = _flagmw(broken, "override", "model.fallbacks", '["gpt-4o"]', "--reason", "r")
    assert done.returncode == bad_value.returncode != 0  # as any value that does not fit
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert (
        "flagmw: error: <python>: model.fallbacks: model.fallbacks cannot be checked: its "
        "JSON schema is unusable (not a valid JSON schema" in done.stderr
    )
    assert "flagmw validate FILE" in done.stderr
    assert _overrides(broken) == []


def test_validate_still_reports_the_schema(broken: Path) -> None:
    done = _flagmw(broken, "validate", "flags.yaml")
    assert done.returncode == 1
    assert "flags.yaml:18: flags[model.fallbacks].schema: not a valid JSON schema" in done.stderr
    published = _flagmw(broken, "publish", "flags.yaml", "--message", "second")
    assert published.returncode == 1
    assert "flags[model.fallbacks].schema: not a valid JSON schema" in published.stderr
