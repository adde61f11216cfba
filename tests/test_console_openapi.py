"""The console's OpenAPI document is served, and equals the committed
``docs/console-openapi.json`` (regenerate it with
``python -m flagmw.console.openapi > docs/console-openapi.json`` after an API change, and
review the diff); ``flagmw serve`` refuses a non-loopback interface without TLS."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from flagmw import MemoryStore
from flagmw.cli.app import main
from flagmw.cli.console import is_loopback
from flagmw.console import create_app
from flagmw.console.openapi import openapi_document

COMMITTED = Path(__file__).parent.parent / "docs" / "console-openapi.json"


def test_the_openapi_document_is_the_committed_one() -> None:
    generated = openapi_document()
    committed = json.loads(COMMITTED.read_text(encoding="utf-8"))
    assert generated == committed, (
        "the API changed: regenerate docs/console-openapi.json with "
        "`python -m flagmw.console.openapi > docs/console-openapi.json` and review the diff"
    )


def test_the_openapi_document_is_served_and_names_every_route() -> None:
    http = TestClient(create_app(MemoryStore()))
    doc = http.get("/api/openapi.json").json()
    assert doc == openapi_document()
    ops = {op["operationId"] for path in doc["paths"].values() for op in path.values()}
    assert {
        "featureFlags",
        "listFlags",
        "explainFlag",
        "listSnapshots",
        "getSnapshot",
        "diffSnapshots",
        "publishSnapshot",
        "rollbackSnapshot",
        "listOverrides",
        "createOverride",
        "renewOverride",
        "endOverride",
        "auditLog",
        "events",
        "healthz",
        "readyz",
        "metrics",
    } <= ops
    assert not any(p.startswith("/ui") or p == "/login" for p in doc["paths"])


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.0.0.5", False),
        ("::", False),
        ("example.org", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_serve_refuses_a_public_interface_without_tls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--store", str(tmp_path / "s.db"), "serve", "--host", "0.0.0.0"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "refusing to serve plain HTTP on 0.0.0.0" in err
    assert "--allow-insecure-bind" in err
    with pytest.raises(SystemExit) as exc:
        main(["--store", str(tmp_path / "s.db"), "serve", "--tls-cert", "c.pem"])
    assert exc.value.code == 2
    assert "both --tls-cert and --tls-key" in capsys.readouterr().err
