"""``flagmw export --format flagd`` on a real SQLite store (a separate process), and the
JsonLogic semantics the export relies on (docs/flagd.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from flagmw.interop.jsonlogic import JsonLogicError, evaluate, flagd_data

FLAGS = """\
flags:
  tools.refund.enabled: {type: bool, default: true, binding: hot}
  model.primary: {type: enum, choices: [gpt-a, gpt-b], default: gpt-a}
  loop.max: {type: int, min: 1, max: 50, default: 8}
  model.fallbacks: {type: json, schema: {type: array}, default: []}
environments:
  staging: {loop.max: 20}
tenants:
  acme: {values: {model.primary: gpt-b}}
rules:
  - name: ramp
    rollout: {percent: 10, bucketing: flagd}
    set: {loop.max: 12}
"""


def _flagmw(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLAGMW_", "FF_"))}
    env["FLAGMW_ACTOR"] = "tester"
    return subprocess.run(
        [sys.executable, "-m", "flagmw.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )


def test_cli_export_lists_losses_and_strict_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "flags.yaml").write_text(FLAGS)
    assert _flagmw("init", "--no-flags-file", cwd=tmp_path).returncode == 0
    r = _flagmw("publish", "flags.yaml", "-m", "first", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = _flagmw("publish", "flags.yaml", "-m", "again", cwd=tmp_path)  # no change: still rev 1
    r = _flagmw("kill", "tools.refund.enabled", "--reason", "incident", "--ttl", "1h", cwd=tmp_path)
    assert r.returncode == 0, r.stderr

    r = _flagmw("export", "--format", "flagd", "-o", "flags.flagd.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "flags.flagd.json").read_text())
    assert doc["$schema"] == "https://flagd.dev/schema/v0/flags.json"
    assert doc["metadata"] == {"flagmw.environment": "production", "version": "1"}
    assert doc["flags"]["model.primary"]["targeting"] == {
        "if": [{"===": [{"var": "tenant_id"}, "acme"]}, "gpt-b", None]
    }
    losses = [line for line in r.stderr.splitlines() if line.startswith("flagmw: loss:")]
    assert any("ov-1" in line and "kill" in line for line in losses)  # the kill is listed
    assert any("JSON schema" in line for line in losses)
    assert any("flagmw: note:" in line and "staging" in line for line in r.stderr.splitlines())

    r = _flagmw("--json", "export", "--format", "flagd", "--environment", "staging", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["rev"] == 1
    assert report["environment"] == "staging"
    assert report["document"]["flags"]["loop.max"]["defaultVariant"] == "20"
    assert {x["code"] for x in report["losses"]} >= {"override", "json_schema"}

    r = _flagmw("export", "--format", "flagd", "--strict", "-o", "strict.json", cwd=tmp_path)
    assert r.returncode == 1
    assert "nothing was written" in r.stderr
    assert not (tmp_path / "strict.json").exists()
    r = _flagmw("export", "--format", "flagd", "--rev", "7", cwd=tmp_path)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    r = _flagmw("export", "--format", "yaml", cwd=tmp_path)
    assert r.returncode == 2

    # and back: the exported file imports into a valid flags file
    r = _flagmw("import", "--format", "flagd", "flags.flagd.json", "-o", "back.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = _flagmw("validate", "back.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr


def _ev(expr: Any, **attrs: Any) -> Any:
    return evaluate(expr, flagd_data("f", attrs.pop("targetingKey", None), attrs))


def test_jsonlogic_semantics_the_mapping_relies_on() -> None:
    x = {"var": "x"}
    # a missing attribute is null: strict tests are false, loose comparisons coerce
    assert _ev({"===": [x, "a"]}) is False
    assert _ev({"!==": [x, None]}) is False
    assert _ev({"<": [x, 5]}) is True  # null < 5 (JavaScript): why the export guards
    assert _ev({"<": [x, 5]}, x="4") is True  # numeric text
    assert _ev({"===": [{"+": [x]}, x]}, x="4") is False  # the export's number test
    assert _ev({"===": [{"+": [x]}, x]}, x=4) is True
    assert _ev({"===": [{"cat": [x]}, x]}, x="a") is True  # the export's text test
    assert _ev({"===": [{"cat": [x]}, x]}, x=5) is False
    # strict equality: 1 === 1.0, 1 !== true; loose: "1" == 1
    assert _ev({"===": [x, 1.0]}, x=1) is True
    assert _ev({"===": [x, True]}, x=1) is False
    assert _ev({"==": [x, 1]}, x="1") is True
    # in: strict membership in a list, substring in a string
    assert _ev({"in": [x, ["1", 2]]}, x=1) is False
    assert _ev({"in": ["@faas.com", x]}, x="ann@faas.com") is True
    # flagd's own operators
    assert _ev({"starts_with": [x, "ab"]}, x="abc") is True
    assert _ev({"ends_with": [x, "bc"]}, x=3) is False
    assert _ev({"sem_ver": [x, ">=", "1.2.0"]}, x="v1.10.0") is True
    assert _ev({"sem_ver": [x, "^", "2.0.0"]}, x="2.9.1") is True
    assert _ev({"sem_ver": [x, "<", "1.0.0"]}, x="1.0.0-rc.1") is True
    assert _ev({"if": [{"var": "$flagd.flagKey"}, "yes", "no"]}) == "yes"
    assert _ev({"fractional": [["a", 1], ["b", 1]]}) is None  # no targetingKey
    assert _ev({"fractional": [["a", 1], ["b", 0]]}, targetingKey="u") == "a"
    assert _ev({"and": [[], True]}) == []  # JsonLogic: an empty array is false
    with pytest.raises(JsonLogicError):
        _ev({"regex": [x, "a.*"]})
    with pytest.raises(JsonLogicError):
        evaluate({"$ref": "nope"}, {}, {})


def test_the_example_in_the_docs_is_what_export_writes() -> None:
    import yaml

    from flagmw.core.registry import FlagRegistry
    from flagmw.core.snapshot import validate_document
    from flagmw.interop.flagd_export import export_flagd

    text = (Path(__file__).resolve().parents[1] / "docs" / "flagd.md").read_text()
    section = text.split("variant. For example", 1)[1]
    flags_yaml = section.split("```yaml", 1)[1].split("```", 1)[0]
    shown = json.loads(section.split("```json", 1)[1].split("```", 1)[0])
    data = yaml.safe_load(flags_yaml)
    registry = FlagRegistry.from_dict(data)
    snapshot = validate_document(data, registry)
    assert export_flagd(registry, snapshot.document, rev=4).document == shown
