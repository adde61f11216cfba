"""No identifier crashes anything (issue 9 item 1), at the ``EvaluationContext``
boundary: every id field is normalised when the context is built — valid text unchanged,
a lone surrogate as its visible escape, an ``int`` or UUID as text, any other value
absent — so the resolver, the hash, the pin, the trace and the terminal only ever see
valid text, and valid ids keep their buckets.

``mmh3`` segfaults on a lone surrogate, so whatever hashes runs in a child process: a
segfault is an exit code there (-11), a failure here, not a dead test runner.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from flagmw import EvaluationContext
from flagmw.core.context import context_id

FLAGS = {
    "prompt.style": {"type": "enum", "choices": ["v2", "v3"], "default": "v2", "owner": "t"},
    "prompt.label": {"type": "string", "default": "-", "owner": "t"},
    "loop.max": {"type": "int", "default": 8, "min": 1, "max": 50, "owner": "t"},
}
DOC = {
    "rules": [
        {"name": "listed", "when": {"user_id": {"in": ["u-1", "\\udcff"]}}, "set": {"loop.max": 2}},
        {"name": "plan", "when": {"plan": {"in": ["pro"]}}, "set": {"loop.max": 3}},
        {
            "name": "half",
            "rollout": {"percent": 50, "unit": "tenant", "salt": "r"},
            "set": {"prompt.style": "v3"},
        },
    ],
    "tenants": {"acme": {"values": {"loop.max": 4}}},
    "routes": {"refunds": {"values": {"loop.max": 5}}},
    "experiments": {
        "label": {
            "flag": "prompt.label",
            "unit": "user",
            "variants": {"a": "A", "b": "B"},
            "weights": {"a": 50, "b": 50},
        }
    },
}


def child(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a new interpreter (a crash is its exit code)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        errors="replace",
    )


#: Values an id field may be handed: text of every kind (lone surrogates, controls, NUL),
#: numbers, and things that are not ids at all.
IDS = st.one_of(
    st.none(),
    st.text(alphabet=st.characters(codec=None), max_size=12),
    st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=3),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.binary(max_size=4),
    st.uuids(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)


@given(st.lists(IDS, min_size=7, max_size=7))
def test_every_id_field_is_valid_text_or_none(values: list[Any]) -> None:
    ctx = EvaluationContext(*values)
    for field, value in zip(EvaluationContext._fields, values, strict=False):
        got = getattr(ctx, field)
        assert got is None or type(got) is str
        if got is not None:
            got.encode("utf-8")  # valid Unicode: JSON, RFC 8785, the pin and a terminal can hold it
        if type(value) is str:
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                assert got == value.encode("utf-8", "backslashreplace").decode()
            else:
                assert got is value  # a valid id is untouched: its bucket cannot move
        elif (isinstance(value, int) and not isinstance(value, bool)) or isinstance(
            value, uuid.UUID
        ):
            assert got == str(value)
        else:
            assert got is None
    # the copy and the dict round trip keep the rule
    assert ctx._replace(user_id=42).user_id == "42"
    assert ctx._replace(user_id=b"x").user_id is None
    assert EvaluationContext.from_dict(ctx.to_dict()) == ctx
    assert ctx.valid() == ctx.valid().valid()


def test_context_id_examples() -> None:
    assert context_id("u-17") == "u-17"
    assert context_id("ü-1") == "ü-1"
    assert context_id("\ud800") == "\\ud800"
    assert context_id("a\udcffb") == "a\\udcffb"
    assert context_id(42) == "42"
    assert context_id(-(2**80)) == str(-(2**80))
    assert context_id(uuid.UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    for odd in (True, False, 1.5, float("nan"), b"42", ["x"], {"a": 1}, object()):
        assert context_id(odd) is None


def test_resolving_arbitrary_ids_never_crashes_and_valid_ids_keep_their_buckets() -> None:
    """A hypothesis run in a child process: every kind of id in every field, through
    resolve, value, explain, variant and the RunConfig's JSON."""
    done = child(
        f"""
        import json, uuid
        import mmh3
        from hypothesis import given, settings, strategies as st
        from flagmw import EvaluationContext, FlagClient, FlagRegistry, MemoryStore
        from flagmw.core.bucketing import bucket

        c = FlagClient(FlagRegistry.from_dict({{"flags": {FLAGS!r}}}), MemoryStore())
        c.publish({DOC!r}, author="t", message="t")
        ids = st.one_of(
            st.none(), st.text(alphabet=st.characters(codec=None), max_size=12),
            st.sampled_from(["acme", "refunds", "pro", "u-1", "\\ud800", "\\udcff", "x\\x00"]),
            st.integers(), st.floats(), st.booleans(), st.binary(max_size=3), st.uuids(),
            st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.none()),
        )

        @settings(max_examples=400, deadline=None, database=None)
        @given(st.lists(ids, min_size=7, max_size=7))
        def prop(values):
            ctx = EvaluationContext(*values)
            rc = c.resolve(ctx)
            json.loads(rc.to_json())
            rc.to_json().encode("utf-8")
            for key in ("prompt.style", "prompt.label", "loop.max"):
                assert c.value(key, ctx) == rc[key]
                c.explain(key, ctx)
            c.variant("label", ctx)
            uid = values[1]
            if type(uid) is str and ctx.user_id is uid:  # a valid text id: bucket as ever
                assert bucket("label", uid) == mmh3.hash(
                    f"label:{{uid}}".encode("utf-8"), 0, False
                ) % 10_000
                assert rc["prompt.label"] == ("A" if bucket("label", uid) < 5000 else "B")

        prop()
        print("ok")
        """
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-3000:])
    assert done.stdout.strip() == "ok"


def test_an_id_and_its_escape_are_one_id_everywhere() -> None:
    """The API, the command line and a wrapped graph resolve an undecodable id as its
    visible escape: the same bucket, the same rule match (``user_id in ["\\udcff"]``)."""
    done = child(
        f"""
        from flagmw import EvaluationContext, FlagClient, FlagRegistry, MemoryStore
        c = FlagClient(FlagRegistry.from_dict({{"flags": {FLAGS!r}}}), MemoryStore())
        c.publish({DOC!r}, author="t", message="t")
        raw = c.resolve(EvaluationContext(user_id="\\udcff"))
        esc = c.resolve(EvaluationContext(user_id="\\\\udcff"))
        assert raw.context.user_id == "\\\\udcff", raw.context
        assert raw["loop.max"] == 2  # the rule lists the escaped id
        assert raw.to_dict()["values"] == esc.to_dict()["values"]
        print("ok")
        """
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-3000:])


def test_a_wrapped_graph_runs_and_resumes_with_any_configurable_id() -> None:
    """Ids that cannot be text, or whose text is invalid, never crash the run: the run
    completes, is interrupted and resumed from a SQLite checkpoint with the same pinned
    config, the pin holds the escaped id, and a warning names the configurable key."""
    done = child(
        f"""
        import json, logging, sqlite3, tempfile, os
        from typing import TypedDict
        from langgraph.checkpoint.sqlite import SqliteSaver
        from langgraph.graph import START, StateGraph
        from langgraph.types import interrupt, Command
        import flagmw
        from flagmw import FlagClient, FlagRegistry, MemoryStore

        records = []
        class Keep(logging.Handler):
            def emit(self, record):
                records.append(record.getMessage())
        logging.getLogger("flagmw").addHandler(Keep())

        class S(TypedDict, total=False):
            out: str
            after: str

        def first(state):
            rc = flagmw.current()
            return {{"out": f"{{rc['prompt.label']}}:{{rc.context.user_id}}"}}

        def ask(state):
            answer = interrupt("ok?")
            return {{"after": f"{{answer}}:{{flagmw.current()['prompt.label']}}"}}

        class BadStr:
            def __str__(self):
                raise RuntimeError("no text")

        b = StateGraph(S)
        b.add_node("first", first)
        b.add_node("ask", ask)
        b.add_edge(START, "first")
        b.add_edge("first", "ask")
        c = FlagClient(FlagRegistry.from_dict({{"flags": {FLAGS!r}}}), MemoryStore())
        c.publish({DOC!r}, author="t", message="t")
        conn = sqlite3.connect(os.path.join(tempfile.mkdtemp(), "cp.db"), check_same_thread=False)
        g = flagmw.wrap(b.compile(checkpointer=SqliteSaver(conn)), c)
        cases = ["\\ud800", "a\\x1b[2J\\x00", 2**80, BadStr(), b"\\xff", {{"a": 1}}, "u-1"]
        for i, uid in enumerate(cases):
            conf = {{"thread_id": f"t-{{i}}", "user_id": uid, "tenant_id": uid, "seats": 2**60}}
            cfg = {{"configurable": conf}}
            out = g.invoke({{}}, cfg)
            label, _, seen = out["out"].partition(":")
            assert label in ("A", "B", "-"), out
            changed = {{**{DOC!r}, "values": {{"prompt.label": "changed"}}}}
            c.publish(changed, author="t", message=str(i))
            resumed = g.invoke(Command(resume="yes"), cfg)
            assert resumed["after"] == f"yes:{{label}}", (resumed, label)  # pinned
            c.publish({DOC!r}, author="t", message="back")
            if uid == "\\ud800":
                assert seen == "\\\\ud800", seen
        assert any("user_id" in r and "not valid Unicode" in r for r in records), records
        assert any("user_id" in r and "no usable text" in r for r in records), records
        print("ok")
        """
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-3000:])
    assert done.stdout.strip().endswith("ok"), done.stdout


def test_explain_on_the_command_line_with_undecodable_ids_in_every_option(
    tmp_path: Any,
) -> None:
    from hostile_operator_cli import cli, project

    folder = project(tmp_path)
    bad = b"\xff\xfe\x1b"
    args = ["--user", bad, "--tenant", bad, "--route", bad, "--plan", bad, "--thread", bad]
    for extra in ([], ["--json"]):
        done = cli(folder, "explain", "prompt.style", *args, "--run", bad, *extra)
        assert done.code == 0, done.err
        assert "Traceback" not in done.err
    doc = json.loads(cli(folder, "explain", "prompt.style", "--user", bad, "--json").out)
    assert doc["context"]["user_id"] == "\\udcff\\udcfe\x1b"
