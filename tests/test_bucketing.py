"""Sticky bucketing: the documented hash, pinned by literal test vectors.

The algorithm (``flagmw/bucketing.py``, ``docs/flags-file.md``)::

    bucket = murmur3_x86_32(f"{salt}:{unit}".encode("utf-8"), seed=0) as unsigned % 10_000

The vectors below are checked twice: against :func:`flagmw.bucketing.bucket` (which uses
``mmh3``) and against :func:`murmur3_32`, a pure-Python murmur3 written here from the
reference algorithm and itself checked against murmur3's published test vectors. So a
change of library, seed, separator, encoding or modulus is caught, and the vectors are
provably murmur3's, not whatever ``mmh3`` returns.
"""

from __future__ import annotations

from typing import Any

import pytest

from flagmw import EvaluationContext, FlagClient, FlagRegistry, MemoryStore
from flagmw.core.bucketing import BUCKETS, UNIT_ATTRIBUTES, bucket, percent_to_bps
from flagmw.core.snapshot import validate_document
from flagmw.errors import ValidationError

# -- an independent murmur3 ------------------------------------------------------------

_C1 = 0xCC9E2D51
_C2 = 0x1B873593
_M32 = 0xFFFFFFFF


def _rotl32(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _M32


def _fmix32(h: int) -> int:
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _M32
    h ^= h >> 16
    return h


def murmur3_32(data: bytes, seed: int = 0) -> int:
    """MurmurHash3_x86_32 (Austin Appleby, SMHasher), unsigned, little-endian blocks."""
    h = seed & _M32
    n = len(data)
    tail_at = n - n % 4
    for i in range(0, tail_at, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _C1) & _M32
        k = _rotl32(k, 15)
        k = (k * _C2) & _M32
        h ^= k
        h = _rotl32(h, 13)
        h = (h * 5 + 0xE6546B64) & _M32
    k = 0
    tail = data[tail_at:]
    if len(tail) >= 3:
        k ^= tail[2] << 16
    if len(tail) >= 2:
        k ^= tail[1] << 8
    if tail:
        k ^= tail[0]
        k = (k * _C1) & _M32
        k = _rotl32(k, 15)
        k = (k * _C2) & _M32
        h ^= k
    h ^= n
    return _fmix32(h)


#: Published MurmurHash3_x86_32 vectors (SMHasher's reference implementation, as
#: collected in the widely used test-vector list): (input, seed, hash).
MURMUR3_REFERENCE = [
    (b"", 0, 0),
    (b"", 1, 0x514E28B7),
    (b"", 0xFFFFFFFF, 0x81F16F39),
    (b"\x00\x00\x00\x00", 0, 0x2362F9DE),
    (b"\xff\xff\xff\xff", 0, 0x76293B50),
    (b"\x21\x43\x65\x87", 0, 0xF55B516B),
    (b"\x21\x43\x65\x87", 0x5082EDEE, 0x2362F9DE),
    (b"\x21\x43\x65", 0, 0x7E4A8634),
    (b"\x21\x43", 0, 0xA0F7B07A),
    (b"\x21", 0, 0x72661CF4),
    (b"aaaa", 0x9747B28C, 0x5A97808A),
    (b"abc", 0, 0xB3DD93FA),
    (b"Hello, world!", 0x9747B28C, 0x24884CBA),
    (b"The quick brown fox jumps over the lazy dog", 0x9747B28C, 0x2FA826CD),
]


@pytest.mark.parametrize(("data", "seed", "expected"), MURMUR3_REFERENCE)
def test_reference_murmur3_matches_published_vectors(data: bytes, seed: int, expected: int) -> None:
    assert murmur3_32(data, seed) == expected


# -- flagmw's pinned vectors -----------------------------------------------------------

#: (salt, unit, murmur3_32 of "salt:unit", bucket). Changing any of these reshuffles
#: every rollout and experiment in every deployment: do not "fix" them.
VECTORS = [
    ("", "", 723937430, 7430),
    ("style-v3-rollout", "u-17", 3665227115, 7115),
    ("style-v3-rollout", "u-18", 4018094665, 4665),
    ("style-v3-rollout", "u-0", 1774290147, 147),
    ("enterprise-v3", "u-1", 999294254, 4254),
    ("salt", "", 3572409453, 9453),
    ("", "user", 3394698269, 8269),
    ("cap-split", "ü", 988716404, 6404),
    ("rollout", "用户-42", 780691313, 1313),
    ("exp", "🙂", 2921630126, 126),
    ("a", "b", 2722392131, 2131),
    ("refund-kill", "tenant-acme", 2096500120, 120),
    ("long-salt-" * 5, "x" * 100, 1090491939, 1939),
    ("s:with:colons", "u:1", 86720310, 310),
    ("Upper", "Case", 2582672607, 2607),
]


@pytest.mark.parametrize(("salt", "unit", "hash32", "expected"), VECTORS)
def test_bucket_vectors(salt: str, unit: str, hash32: int, expected: int) -> None:
    data = f"{salt}:{unit}".encode()
    assert murmur3_32(data, 0) == hash32  # the vector is murmur3's
    assert hash32 % 10_000 == expected
    assert bucket(salt, unit) == expected  # and flagmw computes exactly that


def test_bucket_range_and_constants() -> None:
    assert BUCKETS == 10_000
    assert UNIT_ATTRIBUTES == {
        "user": "user_id",
        "tenant": "tenant_id",
        "thread": "thread_id",
        "run": "run_id",
    }
    seen = {bucket("range", f"u-{i}") for i in range(5000)}
    assert min(seen) >= 0
    assert max(seen) <= 9999
    assert len(seen) > 3000  # spread, not a constant


def test_salt_and_unit_are_separated_by_a_colon() -> None:
    # The input is the plain concatenation "salt:unit": ("a", "b:c") and ("a:b", "c") both
    # hash "a:b:c". Documented, and pinned here so an escaping scheme is a visible change.
    assert bucket("a", "b:c") == bucket("a:b", "c") == murmur3_32(b"a:b:c") % 10_000
    assert bucket("ab", "c") != bucket("a", "bc")


def test_bucket_agrees_with_reference_on_many_inputs() -> None:
    units = [f"user-{i}" for i in range(300)] + ["é" * i for i in range(1, 20)] + ["\x00", " "]
    for salt in ("", "exp", "ünïcode-salt"):
        for unit in units:
            assert bucket(salt, unit) == murmur3_32(f"{salt}:{unit}".encode()) % 10_000


# -- percent → basis points ------------------------------------------------------------


@pytest.mark.parametrize(
    ("percent", "bps"),
    [
        (0, 0),
        (0.0, 0),
        (0.01, 1),
        (0.07, 7),
        (1, 100),
        (25, 2500),
        (33.33, 3333),
        (50.5, 5050),
        (99.99, 9999),
        (100, 10_000),
        (100.0, 10_000),
    ],
)
def test_percent_to_bps(percent: float, bps: int) -> None:
    assert percent_to_bps(percent) == bps


def _rollout_client(registry: FlagRegistry, percent: float, salt: str = "tiny") -> FlagClient:
    client = FlagClient(registry, MemoryStore())
    client.publish(
        {
            "rules": [
                {
                    "name": "ramp",
                    "rollout": {"percent": percent, "unit": "user", "salt": salt},
                    "set": {"prompt.style": "v3"},
                }
            ]
        },
        author="t",
        message="rollout",
    )
    return client


def _user_with_bucket(salt: str, wanted: int, start: int = 0) -> str:
    for i in range(start, start + 400_000):
        uid = f"u-{i}"
        if bucket(salt, uid) == wanted:
            return uid
    raise AssertionError(f"no user with bucket {wanted} under {salt!r}")  # pragma: no cover


def test_rollout_edges_admit_exactly_the_right_buckets(registry: FlagRegistry) -> None:
    b0 = _user_with_bucket("tiny", 0)
    b1 = _user_with_bucket("tiny", 1)
    b9999 = _user_with_bucket("tiny", 9999)
    cases: dict[float, dict[str, bool]] = {
        0: {b0: False, b1: False, b9999: False},
        0.01: {b0: True, b1: False, b9999: False},  # one basis point: bucket 0 only
        0.02: {b0: True, b1: True, b9999: False},
        99.99: {b0: True, b1: True, b9999: False},
        100: {b0: True, b1: True, b9999: True},
    }
    for percent, expected in cases.items():
        client = _rollout_client(registry, percent)
        for uid, admitted in expected.items():
            rc = client.resolve(EvaluationContext(user_id=uid))
            assert (rc["prompt.style"] == "v3") is admitted, (percent, uid, bucket("tiny", uid))
            prov = rc.provenance["prompt.style"]
            assert (prov.rule == "ramp") is admitted


def test_rollout_without_its_unit_never_admits_below_100(registry: FlagRegistry) -> None:
    for percent in (0.01, 50, 99.99):
        client = _rollout_client(registry, percent)
        assert client.value("prompt.style", EvaluationContext(tenant_id="acme")) == "v2"


def test_rollout_percent_finer_than_a_basis_point_is_rejected(registry: FlagRegistry) -> None:
    doc = {"rules": [{"name": "r", "rollout": {"percent": 0.005}, "set": {"prompt.style": "v3"}}]}
    with pytest.raises(ValidationError) as info:
        validate_document(doc, registry)
    (problem,) = info.value.errors
    assert problem.code == "precision"
    assert problem.path == "rules[0].rollout.percent"
    assert "finer than 0.01" in problem.message


@pytest.mark.parametrize("percent", [-1, 100.01, 1000])
def test_rollout_percent_out_of_range_is_rejected(registry: FlagRegistry, percent: float) -> None:
    doc = {"rules": [{"name": "r", "rollout": {"percent": percent}, "set": {"prompt.style": "v3"}}]}
    with pytest.raises(ValidationError) as info:
        validate_document(doc, registry)
    assert [p.path for p in info.value.errors] == ["rules[0].rollout.percent"]


# -- experiment layout ------------------------------------------------------------------


def _experiment_client(weights: dict[str, float], salt: str | None = None) -> FlagClient:
    registry = FlagRegistry.from_dict(
        {
            "flags": {
                "prompt.style": {"type": "enum", "choices": ["a", "b", "c", "d"], "default": "a"}
            }
        }
    )
    exp: dict[str, Any] = {
        "flag": "prompt.style",
        "variants": {name: name for name in weights},
        "weights": weights,
    }
    if salt is not None:
        exp["salt"] = salt
    client = FlagClient(registry, MemoryStore())
    client.publish({"experiments": {"split": exp}}, author="t", message="split")
    return client


def test_variants_are_laid_over_the_buckets_in_written_order() -> None:
    client = _experiment_client({"b": 10, "a": 0, "c": 60.5, "d": 29.5}, salt="lay")
    bounds = [("b", 1000), ("c", 7050), ("d", 10_000)]  # "a" has no range
    for i in range(3000):
        uid = f"u-{i}"
        b = bucket("lay", uid)
        expected = next(name for name, upper in bounds if b < upper)
        assert client.variant("split", EvaluationContext(user_id=uid)) == expected


def test_experiment_salt_defaults_to_its_name() -> None:
    client = _experiment_client({"a": 50, "b": 50})
    for i in range(500):
        uid = f"u-{i}"
        expected = "a" if bucket("split", uid) < 5000 else "b"
        assert client.variant("split", EvaluationContext(user_id=uid)) == expected


def test_ramping_the_last_variant_only_adds_units() -> None:
    """The ramp-up rule: control first, treatment last; raising the treatment's weight
    1 → 5 → 25 → 50 → 100 never moves a unit out of the treatment."""
    users = [EvaluationContext(user_id=f"u-{i}") for i in range(4000)]
    previous: set[str] = set()
    shares = []
    for w in (1, 5, 25, 50, 100):
        client = _experiment_client({"a": 100 - w, "b": w}, salt="ramp")
        treated = {u.user_id for u in users if client.variant("split", u) == "b"}  # type: ignore[misc]
        assert previous <= treated, f"units left the treatment when ramping to {w} %"
        previous = treated
        shares.append(len(treated))
    assert shares == sorted(shares)
    assert shares[-1] == len(users)


def test_the_layout_follows_the_written_order() -> None:
    # the same weights written in the other order give the treatment to other units (an
    # implementation that sorted variants would not)
    users = [EvaluationContext(user_id=f"u-{i}") for i in range(2000)]
    first = _experiment_client({"b": 25, "a": 75}, salt="ramp")
    last = _experiment_client({"a": 75, "b": 25}, salt="ramp")
    in_first = {u.user_id for u in users if first.variant("split", u) == "b"}
    in_last = {u.user_id for u in users if last.variant("split", u) == "b"}
    assert in_first != in_last
    for u in users:
        b = bucket("ramp", u.user_id or "")
        assert (u.user_id in in_first) is (b < 2500)
        assert (u.user_id in in_last) is (b >= 7500)


def test_growing_a_variant_at_the_expense_of_a_non_neighbour_moves_other_units() -> None:
    # why the ramped variant goes last and takes its weight from the one just before it:
    # with three variants, growing the last at the expense of the first shifts the middle
    users = [EvaluationContext(user_id=f"u-{i}") for i in range(3000)]
    before = _experiment_client({"a": 50, "b": 25, "c": 25}, salt="three")
    after = _experiment_client({"a": 40, "b": 25, "c": 35}, salt="three")
    neighbour = _experiment_client({"a": 50, "b": 15, "c": 35}, salt="three")
    b_before = {u.user_id for u in users if before.variant("split", u) == "b"}
    b_after = {u.user_id for u in users if after.variant("split", u) == "b"}
    assert b_before - b_after, "units left the middle variant"
    c_before = {u.user_id for u in users if before.variant("split", u) == "c"}
    c_neighbour = {u.user_id for u in users if neighbour.variant("split", u) == "c"}
    assert c_before <= c_neighbour
    a_neighbour = {u.user_id for u in users if neighbour.variant("split", u) == "a"}
    assert a_neighbour == {u.user_id for u in users if before.variant("split", u) == "a"}
