"""Canonical JSON per RFC 8785 (``flagmw.core.canonical``) and the hashes built on it.

* ``canonical_json`` equals the reference library (``rfc8785.dumps``) for every JSON
  value, and ``json_fragment`` for every scalar;
* a RunConfig's ``config_hash`` is ``sha256(rfc8785.dumps(values))`` — the payload and
  algorithm documented in ``docs/concepts.md`` — for every set of typed values;
* a fixed test vector (the worked example of ``docs/concepts.md``), also recomputed
  in JavaScript when ``node`` is installed: the hash is computable in another language;
* snapshot content hashes are RFC 8785 too; RunConfigs pinned by 0.1 (hashed over
  ``json.dumps``) still verify.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from conftest import T0
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_properties import TYPED, _typed_run_config, contexts, typed_values

from flagmw import EvaluationContext, FlagClient, FlagRegistry, IntegrityError, RunConfig
from flagmw.core.canonical import (
    MAX_SAFE_INTEGER,
    CanonicalizationError,
    canonical_json,
    json_fragment,
)
from flagmw.core.compiled import CompiledSnapshot
from flagmw.core.resolve import resolve
from flagmw.core.snapshot import validate_document

safe_ints = st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
finite_floats = st.floats(allow_nan=False, allow_infinity=False)
scalars = st.one_of(st.none(), st.booleans(), safe_ints, finite_floats, st.text())
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(value=json_values)
def test_canonical_json_is_rfc8785(value: Any) -> None:
    assert canonical_json(value) == rfc8785.dumps(value).decode("utf-8")


@settings(max_examples=400, deadline=None)
@given(value=scalars)
def test_fragments_are_rfc8785(value: Any) -> None:
    assert json_fragment(value) == rfc8785.dumps(value).decode("utf-8")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, "1"),
        (-0.0, "0"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e-7, "1e-7"),
        (0.000001, "0.000001"),
        (1e16, "10000000000000000"),
        (2.5e-5, "0.000025"),
        ({"b": 1, "a": [1.5, "x\n"]}, '{"a":[1.5,"x\\n"],"b":1}'),
        # UTF-16 order: U+1F600 (surrogates D83D DE00) sorts before U+E000
        ({"\ue000": 1, "\U0001f600": 2}, '{"\U0001f600":2,"\ue000":1}'),
        ("\u2028é\x1f", '"\u2028é\\u001f"'),
        # beyond I-JSON's ±2**53 − 1: exact digits, never an error
        (2**60, "1152921504606846976"),
        ([2**53, 1.0], "[9007199254740992,1]"),
    ],
)
def test_canonical_forms(value: Any, expected: str) -> None:
    assert canonical_json(value) == expected


@pytest.mark.parametrize(
    "bad", [float("nan"), float("inf"), "\ud800", {"a": {"\ud800": 1.5}}, {1, 2}]
)
def test_what_json_cannot_hold_is_refused(bad: Any) -> None:
    with pytest.raises(CanonicalizationError):
        canonical_json(bad)
    assert issubclass(CanonicalizationError, ValueError)


@settings(max_examples=150, deadline=None)
@given(global_values=typed_values, ctx=contexts)
def test_config_hash_is_sha256_of_rfc8785_of_the_values(
    global_values: dict[str, Any], ctx: EvaluationContext
) -> None:
    rc = _typed_run_config(global_values, ctx)
    payload = {key: rc[key] for key in rc}  # the documented payload: key → value
    try:
        body = rfc8785.dumps(payload)
    except rfc8785.IntegerDomainError:  # beyond I-JSON: see test_canonical_forms
        assume(False)
    assert rc.config_hash == "sha256:" + hashlib.sha256(body).hexdigest()


# -- the worked example of docs/concepts.md ----------------------------------------------

EXAMPLE_REGISTRY = {
    "flags": {
        "agent.enabled": {"type": "bool", "default": True},
        "loop.max_iterations": {"type": "int", "default": 8},
        "model.temperature": {"type": "float", "default": 1.0},
        "model.primary": {
            "type": "enum",
            "default": "gpt-4o",
            "choices": ["gpt-4o", "gpt-4o-mini"],
        },
        "prompt.greeting": {"type": "string", "default": 'Grüß Gott – "hi"\n'},
        "model.limits": {
            "type": "json",
            "default": {"top_p": 0.5, "Max": 1e-7, "stop": ["é", 1e20]},
        },
    }
}
EXAMPLE_BODY = (
    '{"agent.enabled":true,"loop.max_iterations":8,'
    '"model.limits":{"Max":1e-7,"stop":["é",100000000000000000000],"top_p":0.5},'
    '"model.primary":"gpt-4o","model.temperature":1,"prompt.greeting":"Grüß Gott – \\"hi\\"\\n"}'
)
EXAMPLE_HASH = "sha256:a664b424a0c305800d5d6650c75c25fc081f4d922f90830350f9fa547e25b1c7"


def _example() -> RunConfig:
    registry = FlagRegistry.from_dict(EXAMPLE_REGISTRY)
    return FlagClient(registry).resolve(EvaluationContext(tenant_id="acme"), at=T0)


def test_the_documented_test_vector() -> None:
    rc = _example()
    assert canonical_json(dict(rc)) == EXAMPLE_BODY
    assert rc.config_hash == EXAMPLE_HASH
    assert hashlib.sha256(EXAMPLE_BODY.encode("utf-8")).hexdigest() == EXAMPLE_HASH[7:]
    # the same text is in docs/concepts.md
    docs = (Path(__file__).resolve().parents[1] / "docs" / "concepts.md").read_text("utf-8")
    assert EXAMPLE_HASH in docs
    assert EXAMPLE_BODY in docs


JCS_JS = """
function jcs(v) {
  if (v === null || typeof v !== "object") return JSON.stringify(v);
  if (Array.isArray(v)) return "[" + v.map(jcs).join(",") + "]";
  return "{" + Object.keys(v).sort().map(k => JSON.stringify(k) + ":" + jcs(v[k])).join(",") + "}";
}
const body = jcs(JSON.parse(require("fs").readFileSync(0, "utf8")).values);
const hash = require("crypto").createHash("sha256").update(body, "utf8").digest("hex");
process.stdout.write("sha256:" + hash);
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_javascript_recomputes_the_config_hash_from_the_pinned_json() -> None:
    rc = _example()
    out = subprocess.run(
        ["node", "-e", JCS_JS], input=rc.to_json(), capture_output=True, text=True, check=True
    )
    assert out.stdout == rc.config_hash == EXAMPLE_HASH


def test_an_int_and_the_same_float_are_one_json_number() -> None:
    registry = FlagRegistry.from_dict({"flags": {"a.n": {"type": "float", "default": 0.0}}})
    a, b = (
        resolve(
            CompiledSnapshot(registry, validate_document({"values": {"a.n": v}}, registry), 1).view(
                "production"
            ),
            None,
            EvaluationContext(),
            T0,
        )
        for v in (4, 4.0)
    )
    assert a.config_hash == b.config_hash


def test_snapshot_content_hash_is_rfc8785_of_the_base_and_a_multiset_of_overlays() -> None:
    # the definition in flagmw/core/snapshot_hash.py, recomputed here with rfc8785 and
    # hashlib only: sha256(JCS(base) "\n" hex(sum of SHAKE-256/2048 of each overlay))
    doc = {
        "values": {"t.float": 2.0, "t.json": {"b": [1e-7], "a": "ü"}},
        "tenants": {"acme": {"values": {"t.float": 1e-7}}, "ünï": {"values": {}}},
    }
    snapshot = validate_document(doc, TYPED)
    base = dict(snapshot.document, tenants={}, routes={})
    digest = 0
    for name, overlay in snapshot.document["tenants"].items():
        data = b"tenants\0" + name.encode() + b"\0" + rfc8785.dumps(overlay)
        digest += int.from_bytes(hashlib.shake_256(data).digest(256), "big")
    text = rfc8785.dumps(base) + b"\n" + format(digest % (1 << 2048), "0512x").encode()
    expected = "sha256:" + hashlib.sha256(text).hexdigest()
    assert snapshot.content_hash == expected
    # the same content in another order: the same hash
    reordered = dict(doc, tenants=dict(reversed(list(doc["tenants"].items()))))
    assert validate_document(reordered, TYPED).content_hash == expected


def test_runconfigs_pinned_by_0_1_still_verify() -> None:
    rc = _typed_run_config({"t.float": 1.0, "t.json": {"x": 1e-7}}, EvaluationContext())
    stored = rc.to_dict()
    legacy = json.dumps(stored["values"], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    stored["config_hash"] = "sha256:" + hashlib.sha256(legacy.encode("utf-8")).hexdigest()
    assert stored["config_hash"] != rc.config_hash  # 1.0 and 1e-07 are written differently
    assert RunConfig.from_json(stored) == rc
    stored["values"]["t.float"] = 2.0  # and tampering is still detected
    with pytest.raises(IntegrityError):
        RunConfig.from_json(stored)


@given(st.lists(st.dictionaries(st.text(max_size=6), json_values, max_size=4), max_size=8))
def test_many_small_values_at_once_are_each_rfc8785(values: list[dict[str, Any]]) -> None:
    """canonical_json_many (100k overlays: the RFC 8785 checks run once over all) gives
    each value's own canonical text, also when one of them needs the general writer."""
    from flagmw.core.canonical import canonical_json_many

    assert canonical_json_many(values) == [canonical_json(v) for v in values]
    assert canonical_json_many([*values, {"f": 1e-7, "ü": "𝄞"}]) == [
        canonical_json(v) for v in [*values, {"f": 1e-7, "ü": "𝄞"}]
    ]
