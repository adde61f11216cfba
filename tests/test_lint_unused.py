"""``flagmw lint --unused``: registry flags no linted file references (FM004 warnings), and
the console's Hygiene page listing the same."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FLAGS_YAML, snapshot_part
from fastapi.testclient import TestClient

from flagmw import FlagClient, FlagRegistry, SQLiteStore
from flagmw.cli.app import main
from flagmw.console import create_app
from flagmw.lint.paths import lint_paths
from flagmw.stores.tokens import hash_secret, new_secret, token_store

CODE = """
from flagmw import gated

@gated("tools.refund_api.enabled")
def refund(order_id: str) -> str:
    return order_id

def loop_cap(client, ctx):
    return client.value("loop.max_iterations", ctx)

ROUTES = {"primary": 'model.primary'}   # a plain string mention counts too
"""


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    src = tmp_path / "src"
    src.mkdir()
    (src / "agent.py").write_text(CODE, encoding="utf-8")
    flags = tmp_path / "flags.yaml"
    flags.write_text(FLAGS_YAML, encoding="utf-8")
    return src, flags


def test_unused_flags_are_warnings_at_their_registry_line(tree: tuple[Path, Path]) -> None:
    src, flags = tree
    registry = FlagRegistry.from_yaml(flags)
    assert [f for f in lint_paths([src], registry) if f.code == "FM004"] == []
    found = [f for f in lint_paths([src], registry, unused=True) if f.code == "FM004"]
    keys = sorted(f.message.split("'")[1] for f in found)
    assert keys == [
        "agent.enabled",
        "compliance.pii_redaction",
        "model.fallbacks",
        "prompt.style",
    ]
    assert {f.severity for f in found} == {"warning"}
    assert all(f.path == str(flags) and f.line > 0 for f in found)


def test_the_command(tree: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    src, flags = tree
    with pytest.raises(SystemExit) as exc:
        main(["--registry", str(flags), "--json", "lint", "--unused", str(src)])
    assert exc.value.code == 0  # warnings only
    doc = json.loads(capsys.readouterr().out)
    assert sum(f["code"] == "FM004" for f in doc["findings"]) == 4


def test_the_hygiene_page_lists_them(tree: tuple[Path, Path], tmp_path: Path) -> None:
    src, flags = tree
    registry = FlagRegistry.from_yaml(flags)
    store = SQLiteStore(tmp_path / "s.db", create=True)
    FlagClient(registry, store).publish(snapshot_part(), author="a", message="m")
    secret = new_secret()
    token_store(store).add_token(hash_secret(secret) or "", "v", "viewer", actor="a", at=0)
    http = TestClient(create_app(store, registry, code_paths=[str(src)]))
    page = http.get("/ui/hygiene", headers={"Authorization": f"Bearer {secret}"}).text
    assert "Not referenced by the code (4)" in page
    assert "<code>model.fallbacks</code>" in page
    assert "<code>model.primary</code>" not in page
    store.close()
