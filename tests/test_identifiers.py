"""Identifiers are untrusted input (issue 9 item 1): no id crashes the process — the
``mmh3`` C extension segfaults on a lone surrogate, so every crash test runs in a child
process where a segfault is an exit code, not a dead test runner — and valid ids keep
their buckets (the pinned vectors of ``test_bucketing.py`` hold)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import mmh3
from hypothesis import given
from hypothesis import strategies as st

from flagmw import EvaluationContext, FlagClient, FlagRegistry, MemoryStore
from flagmw.core.bucketing import BUCKETS, bucket, unit_key

DOC = {
    "rules": [
        {
            "name": "half",
            "rollout": {"percent": 50, "unit": "user", "salt": "r"},
            "set": {"prompt.style": "v3"},
        }
    ],
    "experiments": {
        "style": {
            "flag": "prompt.label",
            "unit": "tenant",
            "variants": {"a": "A", "b": "B"},
            "weights": {"a": 50, "b": 50},
        }
    },
}
FLAGS = {
    "prompt.style": {"type": "enum", "choices": ["v2", "v3"], "default": "v2", "owner": "t"},
    "prompt.label": {"type": "string", "default": "-", "owner": "t"},
}


def _client() -> FlagClient:
    client = FlagClient(FlagRegistry.from_dict({"flags": FLAGS}), MemoryStore())
    client.publish(DOC, author="t", message="t")
    return client


def _child(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=60,
        errors="replace",
    )


def test_a_lone_surrogate_id_does_not_crash_the_resolver_or_explain() -> None:
    done = _child(
        f"""
        from flagmw import EvaluationContext, FlagClient, FlagRegistry, MemoryStore
        c = FlagClient(FlagRegistry.from_dict({{"flags": {FLAGS!r}}}), MemoryStore())
        c.publish({DOC!r}, author="t", message="t")
        for uid in ("\\ud800", "a\\udcff", "\\udfff\\ud800"):
            ctx = EvaluationContext(user_id=uid, tenant_id=uid)
            rc = c.resolve(ctx)
            c.value("prompt.style", ctx)
            c.explain("prompt.style", ctx)
            c.explain("prompt.label", ctx)
        print("ok", rc["prompt.style"])
        """
    )
    assert done.returncode == 0, (done.returncode, done.stderr)
    assert done.stdout.startswith("ok ")


def test_flagmw_explain_with_an_undecodable_user_argument_does_not_crash(tmp_path: Path) -> None:
    import yaml

    (tmp_path / "flags.yaml").write_text(yaml.safe_dump({"flags": FLAGS, **DOC}))
    script = Path(sys.executable).with_name("flagmw")
    run = [str(script)] if script.is_file() else [sys.executable, "-m", "flagmw.cli.app"]
    env_store = ["--store", str(tmp_path / "s.db")]
    init = subprocess.run(
        [*run, *env_store, "init", str(tmp_path), "--force"], capture_output=True, cwd=tmp_path
    )
    assert init.returncode == 0, init.stderr
    pub = subprocess.run(
        [*run, *env_store, "publish", "flags.yaml", "-m", "t"], capture_output=True, cwd=tmp_path
    )
    assert pub.returncode == 0, pub.stderr
    # bytes arguments: b"\xff" is not UTF-8; Python hands it over as "\udcff"
    for extra in ([], ["--json"]):
        done = subprocess.run(
            [*run, *env_store, "explain", "prompt.style", "--user", b"\xff", *extra],  # type: ignore[list-item]
            capture_output=True,
            cwd=tmp_path,
            timeout=60,
        )
        assert done.returncode == 0, (done.returncode, done.stderr)
        assert b"Traceback" not in done.stderr
        assert b"prompt.style" in done.stdout


def test_int_ids_bucket_like_their_decimal_text_and_other_values_are_not_ids() -> None:
    assert bucket("s", 42) == bucket("s", "42")
    client = _client()
    as_int = client.resolve(EvaluationContext(user_id=42, tenant_id=7))  # type: ignore[arg-type]
    as_str = client.resolve(EvaluationContext(user_id="42", tenant_id="7"))
    assert as_int["prompt.style"] == as_str["prompt.style"]
    assert as_int["prompt.label"] == as_str["prompt.label"]
    for odd in (True, 1.5, b"42", ("4", "2"), {"id": 4}):
        rc = client.resolve(EvaluationContext(user_id=odd, tenant_id=odd))  # type: ignore[arg-type]
        # not an id: the rollout and the experiment do not apply
        assert rc["prompt.style"] == "v2"
        assert rc["prompt.label"] == "-"


@given(st.text(), st.text(alphabet=st.characters(codec=None), max_size=30))
def test_every_text_id_buckets_without_crashing_and_valid_text_keeps_its_bucket(
    salt: str, unit: str
) -> None:
    b = bucket(salt, unit)
    assert 0 <= b < BUCKETS
    text = f"{salt}:{unit}"
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: hashed with surrogatepass
        data = text.encode("utf-8", "surrogatepass")
    assert b == mmh3.hash(data, 0, False) % BUCKETS
    key = unit_key(f"{salt}:", unit)
    assert key is not None


@given(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), st.text(max_size=5))
def test_surrogate_ids_are_stable(surrogate: str, rest: str) -> None:
    uid = rest + surrogate
    assert bucket("salt", uid) == bucket("salt", uid)


def test_a_wrapped_graph_invoked_with_a_surrogate_user_id_completes() -> None:
    done = _child(
        f"""
        from typing import TypedDict
        from langgraph.checkpoint.memory import InMemorySaver
        from langgraph.graph import START, StateGraph
        import flagmw
        from flagmw import FlagClient, FlagRegistry, MemoryStore

        class S(TypedDict, total=False):
            out: str

        def node(state):
            return {{"out": flagmw.current()["prompt.style"]}}

        b = StateGraph(S)
        b.add_node("n", node)
        b.add_edge(START, "n")
        c = FlagClient(FlagRegistry.from_dict({{"flags": {FLAGS!r}}}), MemoryStore())
        c.publish({DOC!r}, author="t", message="t")
        g = flagmw.wrap(b.compile(checkpointer=InMemorySaver()), c)
        for uid in ("\\ud800", 17):
            conf = {{"thread_id": f"t-{{uid!r}}", "user_id": uid, "tenant_id": uid,
                     "seats": 2**60, "ratio": float("nan")}}
            cfg = {{"configurable": conf}}
            out = g.invoke({{}}, cfg)
            assert out["out"] in ("v2", "v3"), out
        print("ok")
        """
    )
    assert done.returncode == 0, (done.returncode, done.stderr)
    assert done.stdout.strip() == "ok"


@given(
    st.text(alphabet=st.characters(codec=None), max_size=20),
    st.dictionaries(
        st.text(alphabet=st.characters(codec=None), max_size=5),
        st.text(alphabet=st.characters(codec=None), max_size=5)
        | st.integers()
        | st.floats()
        | st.booleans(),
        max_size=3,
    ),
)
def test_a_valid_context_is_canonicalisable_and_valid_text_is_left_alone(
    text: str, attributes: dict[str, object]
) -> None:
    import rfc8785

    ctx = EvaluationContext(tenant_id=text, user_id=text, attributes=attributes).valid()
    rfc8785.dumps(ctx.to_dict())  # raises on a lone surrogate
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        assert ctx.user_id != text
    else:
        assert ctx.user_id is text
    plain = EvaluationContext(tenant_id="acme", user_id="ü-1", attributes={"region": "eu"})
    assert plain.valid() is plain


_ID_VALUES = (
    st.text(alphabet=st.characters(codec=None), max_size=12)
    | st.integers()
    | st.uuids()
    | st.booleans()
    | st.floats(allow_nan=False)
    | st.none()
)


@given(
    st.dictionaries(
        st.sampled_from(
            ["tenant_id", "user_id", "route", "thread_id", "run_id", "plan", "environment"]
        ),
        _ID_VALUES,
    ),
    _ID_VALUES,
    st.none() | st.text(max_size=8),
)
def test_the_wrappers_context_equals_the_general_constructors(
    ids: dict[str, object], config_run_id: object, route: str | None
) -> None:
    """``context_from_config`` builds a run's context without repeating the constructor's
    normalisation of ids it already made valid text (``EvaluationContext._of_valid_ids``):
    the context is the one the general constructor gives for the same ids, field by
    field, whatever the ids are (text with lone surrogates, ints, UUIDs, other values)."""
    from flagmw.langgraph.context import context_from_config

    config: dict[str, object] = {"configurable": dict(ids), "run_id": config_run_id}
    ctx = context_from_config(config, route=route)  # type: ignore[arg-type]
    expected = {k: v for k, v in ids.items() if k != "environment" and v is not None}
    if "run_id" not in expected and config_run_id is not None:
        expected["run_id"] = config_run_id
    if "route" not in expected and route is not None:
        expected["route"] = route
    # what the constructor makes of each: _id_text's str() first, as the builder does
    reference = EvaluationContext(**{k: str(v) for k, v in expected.items()})  # type: ignore[arg-type]
    assert ctx == reference
    assert tuple(ctx) == tuple(reference)
    assert not ctx.attributes
    assert (
        EvaluationContext._of_valid_ids(
            {k: v for k, v in zip(ctx._fields, ctx, strict=False) if v is not None}
        )
        == ctx
    )
