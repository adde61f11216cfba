"""A careless or hostile operator (issue 9 item 4): TTLs ``inf``/``nan``/400 digits,
limits and revs of ``2**70``, lone surrogates in reasons and keys, wrongly typed API
arguments. Each is a clear error — a located ``ValidationError`` or one line
``flagmw: error: …`` with its exit code — never a traceback or an "internal error", and
the store is byte-identical afterwards. The command line runs as real OS processes
against a real SQLite store; the API against a real SQLite store file."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hostile_operator_cli import FLAGS, SNAPSHOT, cli, project, store_bytes
from hypothesis import given
from hypothesis import strategies as st

from flagmw import FlagClient, FlagRegistry, SQLiteStore
from flagmw.core.overrides import MAX_DURATION_SECONDS, format_duration, parse_duration
from flagmw.errors import (
    ConflictError,
    FlagmwError,
    NotFoundError,
    OverrideError,
    ValidationError,
)

BIG = str(2**70)
DIGITS_400 = "9" * 400
DIGITS_5001 = "7" * 5001

# -- the command line ---------------------------------------------------------------------

#: (arguments, exit code, a regular expression the one error line matches)
CLI_CASES: list[tuple[tuple[str | bytes, ...], int, str]] = [
    (("kill", "tools.refund.enabled", "--reason", "r", "--ttl", "inf"), 2, "not a duration"),
    (("kill", "tools.refund.enabled", "--reason", "r", "--ttl", "nan"), 2, "not a duration"),
    (("kill", "tools.refund.enabled", "--reason", "r", "--ttl", "-inf"), 2, "not a duration"),
    (("kill", "tools.refund.enabled", "--reason", "r", "--ttl", "1e400"), 2, "not a duration"),
    (("kill", "tools.refund.enabled", "--reason", "r", "--ttl", DIGITS_400), 2, "at most 100 y"),
    (("kill", "tools.refund.enabled", "--reason", "r", "--ttl", DIGITS_5001 + "h"), 2, "at most"),
    (("kill", "tools.refund.enabled", "--reason", "r", "--ttl", "0"), 2, "must be positive"),
    (("override", "loop.max", "4", "--reason", "r", "--ttl", "NaN"), 2, "not a duration"),
    (("--max-ttl", DIGITS_400, "kill", "tools.refund.enabled", "--reason", "r"), 2, "max-ttl"),
    (("--max-ttl", "inf", "kill", "tools.refund.enabled", "--reason", "r"), 2, "max-ttl"),
    (("diff", "1", BIG), 2, f"no snapshot rev {BIG}"),
    (("diff", BIG, "1"), 2, f"no snapshot rev {BIG}"),
    (("rollback", BIG, "-m", "x"), 2, f"no snapshot rev {BIG}"),
    (("publish", "flags.yaml", "-m", "x", "--parent", BIG), 3, "publish conflict"),
    (("audit", "--limit", "0"), 2, "--limit"),
    (("diff", "1", "two"), 2, "valid integer"),
    # a byte that is not UTF-8 reaches Python as a lone surrogate ("\udcff")
    (("kill", "tools.refund.enabled", "--reason", b"\xff"), 1, r"reason: .*lone surrogate"),
    (("kill", "tools.refund.enabled", "--reason", b"ok \xc3("), 1, r"lone surrogate"),
    (("kill", b"tools.\xff", "--reason", "r"), 1, r"key: .*lone surrogate"),
    (("kill", "tools.refund.enabled", "--reason", "r", "--tenant", b"\xfe"), 1, r"tenant: "),
    (("kill", "tools.refund.enabled", "--reason", "r", "--route", b"\xfe"), 1, r"route: "),
    (("kill", "tools.refund.enabled", "--reason", "r", "--actor", b"\xff"), 1, r"actor: "),
    (("override", "prompt.note", b"\xff", "--reason", "r"), 1, r"value: .*lone surrogate"),
    (("unkill", b"ov-\xff", "--reason", "r"), 1, r"override_id: .*lone surrogate"),
    (("renew", b"ov-\xff", "--reason", "r"), 1, r"override_id: .*lone surrogate"),
    (("publish", "flags.yaml", "-m", b"\xff"), 1, r"message: .*lone surrogate"),
    (("publish", "flags.yaml", "-m", "x", "--author", b"\xff"), 1, r"author: .*lone surrogate"),
    (("audit", "--action", b"\xff"), 1, r"action: .*lone surrogate"),
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return project(tmp_path_factory.mktemp("hostile-operator"))


@pytest.mark.parametrize(("args", "code", "message"), CLI_CASES, ids=lambda v: repr(v)[:60])
def test_a_bad_argument_is_one_clear_line_and_changes_nothing(
    folder: Path, args: tuple[str | bytes, ...], code: int, message: str
) -> None:
    before = store_bytes(folder)
    done = cli(folder, *args)
    assert done.code == code, (done.code, done.err)
    assert "Traceback" not in done.err, done.err
    assert "internal error" not in done.err, done.err
    last = done.err_lines[-1]
    assert last.startswith("flagmw: error: "), done.err
    assert re.search(message, last), last
    assert len(last) < 400, last  # a 5001-digit TTL is not echoed back whole
    assert store_bytes(folder) == before  # nothing changed, no file created


@pytest.mark.parametrize("command", ["audit", "history"])
def test_a_limit_beyond_any_store_means_all(folder: Path, command: str) -> None:
    plain = cli(folder, command, "--json")
    huge = cli(folder, command, "--limit", BIG, "--json")
    assert plain.code == huge.code == 0, huge.err
    assert huge.out == plain.out


def test_an_undecodable_user_id_explains_like_its_escape(folder: Path) -> None:
    """``--user $'\\xff'`` is resolved with the id ``\\udcff`` (its visible escape) —
    the same bucket the API and a wrapped graph give it."""
    raw = cli(folder, "explain", "prompt.style", "--user", b"\xff", "--json")
    escaped = cli(folder, "explain", "prompt.style", "--user", "\\udcff", "--json")
    assert raw.code == escaped.code == 0, raw.err
    a, b = json.loads(raw.out), json.loads(escaped.out)
    a.pop("at"), b.pop("at")
    assert a == b
    assert a["context"]["user_id"] == "\\udcff"


# -- the Python admin API --------------------------------------------------------------------


@pytest.fixture
def api(tmp_path: Path) -> tuple[FlagClient, Path]:
    path = tmp_path / "s.db"
    store = SQLiteStore(path, create=True)
    client = FlagClient(FlagRegistry.from_dict({"flags": FLAGS}), store)
    client.publish(SNAPSHOT, author="t", message="first")
    client.kill("tools.refund.enabled", reason="r", actor="a", tenant="acme")
    return client, tmp_path


Call = Callable[[FlagClient], Any]
K = "tools.refund.enabled"

#: (call, the error type, a regular expression its message matches)
API_CASES: list[tuple[str, Call, type[Exception], str]] = [
    ("ttl inf", lambda c: c.kill(K, reason="r", actor="a", ttl=math.inf), OverrideError, "at most"),
    ("ttl nan", lambda c: c.kill(K, reason="r", actor="a", ttl=math.nan), OverrideError, "durat"),
    ("ttl -inf", lambda c: c.kill(K, reason="r", actor="a", ttl=-math.inf), OverrideError, "pos"),
    ("ttl 10**400", lambda c: c.kill(K, reason="r", actor="a", ttl=10**400), OverrideError, "most"),
    (
        "ttl 400 digits",
        lambda c: c.kill(K, reason="r", actor="a", ttl=DIGITS_400),
        OverrideError,
        "",
    ),
    ("ttl list", lambda c: c.kill(K, reason="r", actor="a", ttl=[4]), ValidationError, "ttl: must"),
    ("ttl bool", lambda c: c.kill(K, reason="r", actor="a", ttl=True), ValidationError, "ttl"),
    (
        "renew ttl nan",
        lambda c: c.renew("ov-1", actor="a", reason="r", ttl=math.nan),
        OverrideError,
        "",
    ),
    ("key int", lambda c: c.kill(5, reason="r", actor="a"), ValidationError, r"kill\(\): key"),
    (
        "key list",
        lambda c: c.kill([K], reason="r", actor="a"),
        ValidationError,
        "key: must be text",
    ),
    ("key None", lambda c: c.override(None, 1, reason="r", actor="a"), ValidationError, "key"),
    ("key surrogate", lambda c: c.kill("\ud800", reason="r", actor="a"), ValidationError, "surrog"),
    ("reason int", lambda c: c.kill(K, reason=5, actor="a"), ValidationError, "reason: must be"),
    ("reason bytes", lambda c: c.kill(K, reason=b"r", actor="a"), ValidationError, "reason"),
    ("reason surrogate", lambda c: c.kill(K, reason="a\udcff", actor="a"), ValidationError, "surr"),
    ("reason NUL", lambda c: c.kill(K, reason="a\x00b", actor="a"), ValidationError, "NUL"),
    ("reason None", lambda c: c.kill(K, reason=None, actor="a"), OverrideError, "required"),
    ("actor surrogate", lambda c: c.kill(K, reason="r", actor="\udfff"), ValidationError, "actor"),
    ("tenant int", lambda c: c.kill(K, reason="r", actor="a", tenant=5), ValidationError, "tenant"),
    ("tenant list", lambda c: c.kill(K, reason="r", actor="a", tenant=["x"]), ValidationError, ""),
    ("route dict", lambda c: c.kill(K, reason="r", actor="a", route={}), ValidationError, "route"),
    (
        "env list",
        lambda c: c.kill(K, reason="r", actor="a", environment=[1]),
        ValidationError,
        "env",
    ),
    ("force str", lambda c: c.kill(K, reason="r", actor="a", force="no"), ValidationError, "force"),
    (
        "value surrogate",
        lambda c: c.override("prompt.note", "\ud800", reason="r", actor="a"),
        ValidationError,
        "value",
    ),
    (
        "value NUL",
        lambda c: c.override("prompt.note", "a\x00", reason="r", actor="a"),
        ValidationError,
        "NUL",
    ),
    ("renew id int", lambda c: c.renew(1, actor="a", reason="r"), ValidationError, "override_id"),
    (
        "end id None",
        lambda c: c.end_override(None, actor="a", reason="r"),
        ValidationError,
        "override_id",
    ),
    (
        "end id surrogate",
        lambda c: c.unkill("ov-\ud800", actor="a", reason="r"),
        ValidationError,
        "surr",
    ),
    ("history big", lambda c: c.history("5"), ValidationError, "limit: must be an integer"),
    ("history 0", lambda c: c.history(0), ValidationError, "at least 1"),
    ("history -1", lambda c: c.history(-1), ValidationError, "at least 1"),
    ("history float", lambda c: c.history(1.5), ValidationError, "limit"),
    ("audit action int", lambda c: c.audit(5, action=5), ValidationError, "action"),
    ("audit action surrogate", lambda c: c.audit(action="\ud800"), ValidationError, "action"),
    ("diff 2**70", lambda c: c.diff(1, 2**70), NotFoundError, f"no snapshot rev {BIG}"),
    ("diff -2**70", lambda c: c.diff(-(2**70), 1), NotFoundError, "no snapshot rev"),
    ("diff str", lambda c: c.diff("1", 1), ValidationError, "rev_a: must be an integer"),
    ("get_snapshot 2**70", lambda c: c.get_snapshot(2**70), NotFoundError, "no snapshot rev"),
    ("get_snapshot float", lambda c: c.get_snapshot(1.0), ValidationError, "rev"),
    ("rollback 2**70", lambda c: c.rollback(2**70, author="a", message="m"), NotFoundError, ""),
    ("rollback str", lambda c: c.rollback("1", author="a", message="m"), ValidationError, "rev"),
    (
        "rollback parent str",
        lambda c: c.rollback(1, author="a", message="m", parent_rev="1"),
        ValidationError,
        "parent_rev",
    ),
    (
        "publish parent 2**70",
        lambda c: c.publish({}, author="a", message="m", parent_rev=2**70),
        ConflictError,
        "conflict",
    ),
    (
        "publish parent str",
        lambda c: c.publish({}, author="a", message="m", parent_rev="1"),
        ValidationError,
        "parent_rev",
    ),
    (
        "publish parent bool",
        lambda c: c.publish({}, author="a", message="m", parent_rev=True),
        ValidationError,
        "parent_rev",
    ),
    (
        "publish message int",
        lambda c: c.publish({}, author="a", message=123),
        ValidationError,
        "message",
    ),
    (
        "publish author surrogate",
        lambda c: c.publish({}, author="\ud800", message="m"),
        ValidationError,
        "author",
    ),
    (
        "publish source int",
        lambda c: c.publish(5, author="a", message="m"),
        ValidationError,
        "source",
    ),
    (
        "publish source None",
        lambda c: c.publish(None, author="a", message="m"),
        ValidationError,
        "source",
    ),
    (
        "publish source NUL path",
        lambda c: c.publish("a\x00.yaml", author="a", message="m"),
        ValidationError,
        "NUL",
    ),
    (
        "overrides flag",
        lambda c: c.overrides(include_ended="yes"),
        ValidationError,
        "include_ended",
    ),
    ("exempt key int", lambda c: c.exempt_tenants(5), ValidationError, "key"),
]


@pytest.mark.parametrize(
    ("name", "call", "error", "message"), API_CASES, ids=[c[0] for c in API_CASES]
)
def test_a_bad_api_argument_is_a_clear_flagmw_error_and_changes_nothing(
    api: tuple[FlagClient, Path], name: str, call: Call, error: type[Exception], message: str
) -> None:
    client, folder = api
    client.store.close()
    before = {p.name: p.read_bytes() for p in sorted(folder.glob("s.db*"))}
    client = FlagClient(client.registry, SQLiteStore(folder / "s.db"))
    with pytest.raises(FlagmwError) as info:
        call(client)
    assert type(info.value) is error, (type(info.value), info.value)
    assert re.search(message, str(info.value)), str(info.value)
    if isinstance(info.value, ValidationError):
        (problem,) = info.value.problems
        assert problem.location.endswith("()")  # the operation
        assert problem.path  # the argument
    client.store.close()
    assert {p.name: p.read_bytes() for p in sorted(folder.glob("s.db*"))} == before


def test_a_limit_beyond_any_store_is_clamped(api: tuple[FlagClient, Path]) -> None:
    client, _ = api
    assert client.history(2**70) == client.history(50)
    assert client.audit(2**70) == client.audit(100)


def test_control_characters_are_stored_exactly(api: tuple[FlagClient, Path]) -> None:
    """Only what a store cannot hold is refused; escape sequences are data, kept exactly
    (the command line escapes them when it shows them)."""
    client, _ = api
    reason = "\x1b[2J\u202e\tzero\u200bwidth"
    ov = client.kill(K, reason=reason, actor="a\x1b]0;t\x07")
    assert client.store.get_override(ov.id).reason == reason


# -- the duration parser ---------------------------------------------------------------------


@given(st.one_of(st.text(), st.integers(), st.floats(), st.booleans(), st.none()))
def test_a_duration_is_finite_positive_and_bounded_or_a_value_error(value: Any) -> None:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        message = str(exc)
    else:
        assert math.isfinite(seconds)
        assert 0 < seconds <= MAX_DURATION_SECONDS
        return
    assert "duration" in message
    assert len(message) < 200


@given(
    st.lists(
        st.tuples(st.integers(0, 10**6), st.sampled_from("wdhms")), min_size=1, max_size=4
    ).map(lambda parts: "".join(f"{n}{u}" for n, u in parts))
)
def test_duration_text_in_units_is_the_sum_of_its_parts(text: str) -> None:
    size = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
    total = sum(int(n) * size[u] for n, u in re.findall(r"(\d+)([wdhms])", text))
    if total == 0 or total > MAX_DURATION_SECONDS:
        with pytest.raises(ValueError):
            parse_duration(text)
    else:
        assert parse_duration(text) == total
        assert parse_duration(format_duration(total)) == total
