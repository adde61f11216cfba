"""The per-audience memo of what is derived from a RunConfig's candidates (issue 7 §5:
the wrapper's run start), and that the pins it serves are exactly the ones computed
afresh.

* ``CandidateMemo`` answers only for the very candidate objects, in the same order and
  under the same keys: equal-but-distinct values (``1`` / ``1.0`` / ``True``) miss; many
  audiences that share most candidates each keep their entry;
* ``encode_pin`` served from the memo equals a fresh encoding, for every value, context
  and ``resolved_at`` (property test), and the pin still verifies with the documented
  algorithm (RFC 8785 + SHA-256);
* runs of one audience resolved by a real client share their candidates: the memo is hit.
"""

from __future__ import annotations

import hashlib
import json
from types import MappingProxyType
from typing import Any

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from flagmw import EvaluationContext, Flag, FlagClient, FlagRegistry, MemoryStore
from flagmw.core import runconfig as runconfig_module
from flagmw.core.candidate import make_candidate
from flagmw.core.candidate_memo import CandidateMemo
from flagmw.core.context import WELL_KNOWN_ATTRIBUTES
from flagmw.core.provenance import DEFAULT_PROVENANCE
from flagmw.core.runconfig import RunConfig
from flagmw.langgraph import pin as pin_module
from flagmw.langgraph.pin import decode_pin, encode_pin, pin_digest


def rc_of(candidates: dict[str, Any], **fields: Any) -> RunConfig:
    base: dict[str, Any] = {
        "snapshot_rev": 3,
        "snapshot_hash": "sha256:" + "1" * 64,
        "environment": "test",
        "context": EvaluationContext(tenant_id="acme"),
        "resolved_at": 1764720000.5,
    }
    base.update(fields)
    return RunConfig(candidates, **base)


def cands(values: dict[str, Any]) -> dict[str, Any]:
    return {k: make_candidate(k, v, DEFAULT_PROVENANCE) for k, v in sorted(values.items())}


def fresh_pin(rc: RunConfig) -> str:
    """encode_pin with the memo emptied (RunConfig.memo: the pin's members and the
    config hash), on a copy of ``rc`` that has not looked it up: what it writes without
    the memo."""
    runconfig_module._DERIVED._entries.clear()
    copy = RunConfig(
        rc.candidates,
        snapshot_rev=rc.snapshot_rev,
        snapshot_hash=rc.snapshot_hash,
        environment=rc.environment,
        context=rc.context,
        resolved_at=rc.resolved_at,
        override_ids=rc.override_ids,
        variants=rc.variants,
        changes=rc.changes,
    )
    return encode_pin(copy)


# -- the memo itself -----------------------------------------------------------------


def test_the_memo_answers_for_the_very_candidates_only() -> None:
    memo: CandidateMemo[str] = CandidateMemo()
    one = cands({"a.b": 1, "c.d": "x"})
    memo.put(one, "result")
    assert memo.get(one) == "result"
    assert memo.get(dict(one)) == "result"  # another mapping, the same objects
    assert memo.get(MappingProxyType(one)) == "result"
    # equal but distinct candidates: 1.0 and True compare equal to 1, and write differently
    for other in (1.0, True, 1):
        assert memo.get(cands({"a.b": other, "c.d": "x"})) is None
    # the same objects under other keys
    assert memo.get(dict(zip(("a.c", "c.d"), one.values(), strict=True))) is None
    # a prefix (other length), and nothing
    assert memo.get({"a.b": one["a.b"]}) is None
    assert memo.get({}) is None


def test_audiences_sharing_most_candidates_keep_their_own_entries() -> None:
    memo: CandidateMemo[str] = CandidateMemo()
    shared = cands({"a.a": 0, "m.m": 0, "z.z": 0})  # the defaults every audience shares
    audiences = {}
    for tenant in ("acme", "globex", "initech"):
        own = dict(shared)
        own["m.m"] = make_candidate("m.m", tenant, DEFAULT_PROVENANCE)
        audiences[tenant] = own
        memo.put(own, tenant)
    for tenant, own in audiences.items():
        assert memo.get(own) == tenant


def test_many_audiences_sharing_most_candidates_all_hit() -> None:
    memo: CandidateMemo[int] = CandidateMemo()
    shared = cands({f"f.{i}": 0 for i in range(8)})
    audiences = []
    for n in range(100):
        own = dict(shared)
        own[f"f.{n % 8}"] = make_candidate(f"f.{n % 8}", n, DEFAULT_PROVENANCE)
        audiences.append(own)
        memo.put(own, n)
    assert [memo.get(own) for own in audiences] == list(range(100))


def test_the_memo_is_bounded() -> None:
    memo: CandidateMemo[int] = CandidateMemo(size=4)
    sets = [cands({"k.v": i}) for i in range(10)]
    for i, s in enumerate(sets):
        memo.put(s, i)
        assert memo.get(s) == i
        assert len(memo._entries) <= 4
    assert memo.get(sets[0]) is None  # emptied on the way
    assert memo.get(sets[-1]) == 9


# -- what it serves equals a fresh computation ----------------------------------------

LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53) + 1, 2**53 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=6),
)
VALUES = st.dictionaries(
    st.from_regex(r"[a-z]{1,5}\.[a-z]{1,5}", fullmatch=True),
    st.one_of(LEAF, st.lists(LEAF, max_size=3)),
    min_size=1,
    max_size=8,
)
AT = st.one_of(
    st.floats(min_value=0, max_value=1e22, allow_nan=False),
    st.integers(0, 2**40),
)


@settings(max_examples=150, deadline=None)
@given(values=VALUES, at=AT, tenants=st.lists(st.text(max_size=5), min_size=2, max_size=3))
def test_pins_from_the_memo_are_the_fresh_pins_and_verify(
    values: dict[str, Any], at: float, tenants: list[str]
) -> None:
    shared = cands(values)
    for tenant in tenants:  # runs of one audience: same candidates, other contexts
        rc = rc_of(shared, context=EvaluationContext(tenant_id=tenant or None), resolved_at=at)
        served = encode_pin(rc)
        assert served == fresh_pin(rc)
        assert encode_pin(rc) == served  # and again from the memo
        data = json.loads(served)
        digest = data.pop("digest")
        try:
            payload = rfc8785.dumps(data)
        except rfc8785.IntegerDomainError:  # the documented extension (exact digits)
            payload = pin_module._jcs(data).encode("utf-8")
        assert digest == pin_digest(payload, None)
        # (a float inside a list is stored in its RFC 8785 form, which may read back as
        # an int: the identity that is kept is the config_hash, as in test_pin.py)
        assert decode_pin(served).config_hash == rc.config_hash


def test_equal_values_of_other_types_get_their_own_pins() -> None:
    as_int = rc_of(cands({"a.b": 1}))
    as_float = rc_of(cands({"a.b": 1.0}))
    as_bool = rc_of(cands({"a.b": True}))
    texts = [encode_pin(rc) for rc in (as_int, as_float, as_bool)]
    assert [json.loads(t)["values"]["a.b"] for t in texts] == [1, 1.0, True]
    assert [type(decode_pin(t)["a.b"]) for t in texts] == [int, float, bool]


def test_runs_of_one_audience_hit_the_memo() -> None:
    flags = [Flag(f"f.{i:02d}", "int", i, owner="t") for i in range(20)]
    client = FlagClient(FlagRegistry(flags), MemoryStore(), environment="test")
    try:
        client.publish({"values": {"f.03": 30}}, author="t", message="m")
        a = client.resolve(EvaluationContext(tenant_id="acme", run_id="r-1"))
        b = client.resolve(EvaluationContext(tenant_id="acme", run_id="r-2"))
        pairs = zip(a.candidates.values(), b.candidates.values(), strict=True)
        assert all(x is y for x, y in pairs)
        encode_pin(a)
        misses: list[int] = []
        real = pin_module._encode_members

        def counted(candidates: Any) -> Any:
            misses.append(1)
            return real(candidates)

        pin_module._encode_members = counted
        try:
            text = encode_pin(b)
        finally:
            pin_module._encode_members = real
        assert misses == []
        hashed: list[int] = []
        real_hash = runconfig_module.hash_candidates

        def counted_hash(candidates: Any) -> str:
            hashed.append(1)
            return real_hash(candidates)

        runconfig_module.hash_candidates = counted_hash  # type: ignore[assignment]
        try:
            b.config_hash  # noqa: B018 - the wrapper reads it after the pin: from the memo
        finally:
            runconfig_module.hash_candidates = real_hash  # type: ignore[assignment]
        assert hashed == []
        assert a.memo is b.memo  # one entry: the pin's members and the config hash
        assert a.memo["config_hash"] == b.config_hash == a.config_hash
        assert text == fresh_pin(b)
        assert decode_pin(text) == b
    finally:
        client.close()


@settings(max_examples=100, deadline=None)
@given(values=VALUES)
def test_the_config_hash_from_the_memo_is_the_hash_of_the_values(values: dict[str, Any]) -> None:
    shared = cands(values)
    first = rc_of(shared)
    second = rc_of(shared, context=EvaluationContext(tenant_id="other"))
    expected = "sha256:" + hashlib.sha256(pin_module._jcs(values).encode("utf-8")).hexdigest()
    assert first.config_hash == expected
    assert second.memo is first.memo
    assert second.config_hash == expected
    # equal values in other candidate objects: their own entry, the same hash
    again = rc_of(cands(values))
    assert again.memo is not first.memo or not values
    assert again.config_hash == expected


# -- the pin's context member written without the general writer ----------------------

ID_TEXT = st.one_of(st.none(), st.text(max_size=8), st.integers(-5, 10**20), st.uuids())


@settings(max_examples=300, deadline=None)
@given(fields=st.fixed_dictionaries({name: ID_TEXT for name in WELL_KNOWN_ATTRIBUTES}))
def test_the_context_member_is_its_rfc8785_form(fields: dict[str, Any]) -> None:
    ctx = EvaluationContext(**fields)
    assert pin_module._context_jcs(ctx) == rfc8785.dumps(ctx.to_dict()).decode("utf-8")


@settings(max_examples=150, deadline=None)
@given(
    values=VALUES,
    runs=st.lists(
        st.fixed_dictionaries(
            {
                "environment": st.sampled_from(["production", "staging"]),
                "override_ids": st.lists(st.sampled_from(["ov-1", "ov-2"]), max_size=2).map(tuple),
                "variants": st.dictionaries(
                    st.sampled_from(["exp.a", "exp.b"]), st.sampled_from(["on", "off"])
                ),
                "snapshot_rev": st.one_of(st.none(), st.integers(1, 5)),
            }
        ),
        min_size=2,
        max_size=4,
    ),
)
def test_the_pin_pieces_memo_answers_only_for_the_same_fields(
    values: dict[str, Any], runs: list[dict[str, Any]]
) -> None:
    """Runs sharing their candidates but not their environment, override ids, variants
    or snapshot rev each get the pin a fresh encoding gives them."""
    shared = cands(values)
    for fields in runs:
        rc = rc_of(shared, **fields)
        assert encode_pin(rc) == fresh_pin(rc)
        data = json.loads(encode_pin(rc))
        assert data["environment"] == fields["environment"]
        assert data["override_ids"] == list(fields["override_ids"])
        assert data["variants"] == fields["variants"]
        assert data["snapshot_rev"] == fields["snapshot_rev"]
