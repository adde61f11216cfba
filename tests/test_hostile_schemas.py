"""JSON schemas in flags files are untrusted input (issue 9 item 2): no ``$ref`` makes
flagmw fetch a URL or read a file — through the API, ``flagmw validate`` / ``publish``
and every later command on the store. A real HTTP server on loopback records any
request; it must see none."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from flagmw import Flag, FlagClient, FlagRegistry, MemoryStore, ValidationError


@pytest.fixture
def server() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            body = b'{"type": "object", "properties": {"secret": {"const": "leaked"}}}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def _schemas(base: str, secret_file: Path) -> dict[str, dict[str, Any]]:
    return {
        "http": {"$ref": f"{base}/schema.json"},
        "http-nested": {"type": "object", "properties": {"a": {"$ref": f"{base}/a.json#/x"}}},
        "file": {"$ref": secret_file.as_uri()},
        "relative": {"$ref": "other.json"},
        "dynamic": {"$dynamicRef": f"{base}/d.json"},
        "id-elsewhere": {"$id": f"{base}/root.json", "$ref": f"{base}/other.json"},
    }


def test_a_remote_or_file_ref_is_a_located_error_and_nothing_is_fetched_or_read(
    server: tuple[str, list[str]], tmp_path: Path
) -> None:
    base, seen = server
    secret = tmp_path / "secret.json"
    secret.write_text('{"type": "string", "description": "TOP-SECRET-CONTENT"}')
    for name, schema in _schemas(base, secret).items():
        with pytest.raises(ValidationError) as err:
            Flag("cfg.x", "json", {}, schema=schema)
        text = str(err.value)
        assert "points outside the schema" in text, (name, text)
        assert "TOP-SECRET-CONTENT" not in text
    assert seen == []


def test_refs_inside_the_schema_still_work() -> None:
    schema = {
        "$id": "https://example.invalid/address.json",
        "$defs": {"zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
        "type": "object",
        "properties": {
            "zip": {"$ref": "#/$defs/zip"},
            "again": {"$ref": "https://example.invalid/address.json#/$defs/zip"},
        },
    }
    flag = Flag("cfg.address", "json", {"zip": "12345"}, schema=schema)
    client = FlagClient(FlagRegistry([flag]), MemoryStore())
    with pytest.raises(ValidationError, match="does not match its JSON schema"):
        client.publish({"values": {"cfg.address": {"zip": "nope"}}}, author="t", message="t")
    client.publish({"values": {"cfg.address": {"again": "54321"}}}, author="t", message="t")


def _flagmw(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("flagmw")
    run = [str(script)] if script.is_file() else [sys.executable, "-m", "flagmw.cli.app"]
    return subprocess.run([*run, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_validate_and_publish_refuse_remote_refs_without_a_request(
    server: tuple[str, list[str]], tmp_path: Path
) -> None:
    base, seen = server
    secret = tmp_path / "secret.json"
    secret.write_text('{"description": "TOP-SECRET-CONTENT"}')
    assert _flagmw(tmp_path, "init", ".").returncode == 0
    assert _flagmw(tmp_path, "publish", "flags.yaml", "-m", "first").returncode == 0
    store = tmp_path / "flagmw.db"
    before = store.read_bytes()
    for name, schema in _schemas(base, secret).items():
        doc = {"flags": {"cfg.x": {"type": "json", "default": {}, "owner": "t", "schema": schema}}}
        f = tmp_path / f"{name}.yaml"
        f.write_text(yaml.safe_dump(doc))
        for cmd in (["validate", f.name], ["publish", f.name, "-m", "x"]):
            done = _flagmw(tmp_path, *cmd)
            assert done.returncode == 1, (name, cmd, done.stdout, done.stderr)
            out = done.stdout + done.stderr
            assert f"{f.name}:" in out  # located
            assert "points outside the schema" in out
            assert "TOP-SECRET-CONTENT" not in out
            assert "Traceback" not in out
    assert seen == []
    assert store.read_bytes() == before  # nothing changed
