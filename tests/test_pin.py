"""Where the pin lives and how it is checked (issue 7, bugs 3.2 and 3.3).

* the pin survives deletion of older checkpoints (``prune(strategy="keep_latest")`` on
  PostgresSaver, the same by hand on InMemorySaver and a SqliteSaver file) and the
  resumed run keeps its ``config_hash``; a pinned resume whose pin is gone fails;
* a resume reads a constant number of checkpoints (400-superstep thread, counted);
* bytes: ≤ 100 per checkpoint, ≤ 4 KB per thread for a 50-flag pin;
* the pin's digest covers everything it carries (tenant, snapshot rev, override ids …),
  over RFC 8785 canonical JSON, HMAC-SHA256 with ``FLAGMW_PIN_KEY``; a test vector.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypedDict

import pytest
import rfc8785
from graph_workers.support import linear_graph, make_registry, publish
from hypothesis import given, settings
from hypothesis import strategies as st
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

import flagmw
from flagmw import EvaluationContext, FlagClient, IntegrityError, MemoryStore
from flagmw.core.canonical import canonical_json
from flagmw.core.runconfig import (
    DEFAULT_PROVENANCE,
    Layer,
    Provenance,
    RunConfig,
    make_candidate,
)
from flagmw.langgraph.keys import PIN_KEY, PIN_NAMESPACE, REF_KEY, SPAN_KEY
from flagmw.langgraph.pin import _jcs, decode_pin, encode_pin, pin_digest
from flagmw.langgraph.pin_store import find_pin
from flagmw.langgraph.run import RunState
from flagmw.testing import pinned, pinned_config

POSTGRES_URL = os.environ.get("FLAGMW_TEST_POSTGRES_URL")
SPAN = "0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331"  # a span reference, 49 chars


@pytest.fixture(autouse=True)
def _no_pin_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLAGMW_PIN_KEY", raising=False)


@pytest.fixture
def client() -> Iterator[FlagClient]:
    c = FlagClient(make_registry(), MemoryStore(), environment="test")
    publish(c, 1)
    yield c
    c.close()


def cfg(**configurable: Any) -> dict[str, Any]:
    return {"configurable": {"thread_id": f"t-{uuid.uuid4().hex[:8]}", **configurable}}


def ask(name: str, seen: dict[str, Any]) -> dict[str, Any]:
    return {"answer": interrupt(f"approve {name}?")}


def root_ids(saver: Any, thread: str) -> list[str]:
    base = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    return [t.config["configurable"]["checkpoint_id"] for t in saver.list(base)]


def delete_older_checkpoints(saver: Any, thread: str) -> None:
    """Keep only the latest root checkpoint of ``thread`` (with its pending writes): what
    ``prune(strategy="keep_latest")`` does, by hand where the saver has no ``prune``."""
    if not isinstance(saver, InMemorySaver | SqliteSaver):
        saver.prune([thread], strategy="keep_latest")  # PostgresSaver
        return
    latest, *older = root_ids(saver, thread)
    assert older, "nothing to delete"
    if isinstance(saver, InMemorySaver):
        for cid in older:
            del saver.storage[thread][""][cid]
            saver.writes.pop((thread, "", cid), None)
        return
    with saver.cursor() as cur:
        for table in ("checkpoints", "writes"):
            cur.execute(
                f"DELETE FROM {table} WHERE thread_id = ? AND checkpoint_ns = '' "
                "AND checkpoint_id <> ?",
                (thread, latest),
            )


# -- survives deletion of older checkpoints ---------------------------------------------


def test_pin_survives_deletion_of_older_checkpoints(client: FlagClient, saver: Any) -> None:
    names = ("a1", "a2", "a3", "b", "c")
    graph = flagmw.wrap(linear_graph(names, {"b": ask}, checkpointer=saver), client, tracer=False)
    config = cfg(tenant_id="acme")
    thread = config["configurable"]["thread_id"]
    first = graph.invoke({"log": []}, config)
    pinned_hash = first["log"][0]["hash"]
    assert len(root_ids(saver, thread)) == 5  # input, start, a1, a2, a3 (interrupted in b)
    delete_older_checkpoints(saver, thread)
    assert len(root_ids(saver, thread)) == 1
    for n in range(2, 5):
        publish(client, n)
    assert client.resolve(EvaluationContext(tenant_id="acme")).config_hash != pinned_hash
    out = graph.invoke(Command(resume="yes"), config)
    assert [e["node"] for e in out["log"]][-2:] == ["b", "c"]
    assert {e["hash"] for e in out["log"]} == {pinned_hash}
    assert {e["rev"] for e in out["log"]} == {1}
    assert graph.get_pinned_config(config).config_hash == pinned_hash  # type: ignore[union-attr]


def test_prune_through_the_wrapped_graphs_checkpointer_keeps_the_pin(client: FlagClient) -> None:
    if not POSTGRES_URL:
        pytest.skip("set FLAGMW_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1/test)")
    from langgraph.checkpoint.postgres import PostgresSaver

    with PostgresSaver.from_conn_string(POSTGRES_URL) as saver:
        saver.setup()
        graph = flagmw.wrap(
            linear_graph(("a", "b", "c"), {"b": ask}, checkpointer=saver), client, tracer=False
        )
        config = cfg()
        thread = config["configurable"]["thread_id"]
        pinned_hash = graph.invoke({"log": []}, config)["log"][0]["hash"]
        graph.checkpointer.prune([thread], strategy="keep_latest")  # type: ignore[union-attr]
        assert len(root_ids(saver, thread)) == 1
        publish(client, 2)
        out = graph.invoke(Command(resume="yes"), config)
        assert {e["hash"] for e in out["log"]} == {pinned_hash}


def test_pinned_resume_fails_when_the_pin_itself_is_gone(client: FlagClient) -> None:
    saver = InMemorySaver()
    graph = flagmw.wrap(
        linear_graph(("a", "b"), {"b": ask}, checkpointer=saver), client, tracer=False
    )
    config = cfg()
    thread = config["configurable"]["thread_id"]
    graph.invoke({"log": []}, config)
    del saver.storage[thread][PIN_NAMESPACE]  # e.g. a sweep that deleted it
    publish(client, 2)
    with pytest.raises(IntegrityError, match=r"name pin \w+ .* but it is gone"):
        graph.invoke(Command(resume="yes"), config)
    live = flagmw.wrap(graph, client, tracer=False, on_resume="live")
    out = live.invoke(Command(resume="yes"), config)
    assert out["log"][-1]["rev"] == 2  # resolved afresh, as asked, and pinned again
    assert live.get_pinned_config(config).snapshot_rev == 2  # type: ignore[union-attr]


def test_update_state_carries_the_reference_so_prune_keeps_the_pin(client: FlagClient) -> None:
    saver = InMemorySaver()
    graph = flagmw.wrap(
        linear_graph(("a", "b"), {"b": ask}, checkpointer=saver), client, tracer=False
    )
    config = cfg()
    thread = config["configurable"]["thread_id"]
    pinned_hash = graph.invoke({"log": []}, config)["log"][0]["hash"]
    graph.update_state(config, {"log": [{"node": "human"}]})  # a checkpoint outside a run
    assert REF_KEY in graph.get_state(config).metadata
    delete_older_checkpoints(saver, thread)
    publish(client, 2)
    out = graph.invoke(Command(resume="yes"), config)
    assert {e["hash"] for e in out["log"] if "hash" in e} == {pinned_hash}


def test_a_thread_in_the_0_1_layout_resumes_and_moves_its_pin(
    client: FlagClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """0.1 stored a digest-less ``flagmw.pin/1`` on the run's first root checkpoint."""
    path = tmp_path / "c.sqlite"
    config = cfg()
    thread = config["configurable"]["thread_id"]
    with SqliteSaver.from_conn_string(str(path)) as s:
        graph = flagmw.wrap(
            linear_graph(("a", "b"), {"b": ask}, checkpointer=s), client, tracer=False
        )
        pinned_hash = graph.invoke({"log": []}, config)["log"][0]["hash"]
    with sqlite3.connect(path) as db:  # rewrite the thread as 0.1 left it
        (pin_meta,) = db.execute(
            "SELECT metadata FROM checkpoints WHERE checkpoint_ns = ?", (PIN_NAMESPACE,)
        ).fetchone()
        v1 = json.loads(json.loads(pin_meta)[PIN_KEY])
        del v1["digest"]
        v1["format"] = "flagmw.pin/1"
        db.execute("DELETE FROM checkpoints WHERE checkpoint_ns = ?", (PIN_NAMESPACE,))
        rows = db.execute(
            "SELECT checkpoint_id, metadata FROM checkpoints ORDER BY checkpoint_id"
        ).fetchall()
        for i, (cid, raw) in enumerate(rows):
            meta = {k: v for k, v in json.loads(raw).items() if k != REF_KEY}
            if i == 0:
                meta[PIN_KEY] = json.dumps(v1)
            db.execute(
                "UPDATE checkpoints SET metadata = ? WHERE checkpoint_id = ?",
                (json.dumps(meta), cid),
            )
    publish(client, 2)
    with SqliteSaver.from_conn_string(str(path)) as s:
        graph = flagmw.wrap(
            linear_graph(("a", "b"), {"b": ask}, checkpointer=s), client, tracer=False
        )
        monkeypatch.setenv("FLAGMW_PIN_KEY", "k")  # an unsigned 0.1 pin is refused then
        with pytest.raises(IntegrityError, match="no signature"):
            graph.invoke(Command(resume="yes"), config)
        monkeypatch.delenv("FLAGMW_PIN_KEY")
        out = graph.invoke(Command(resume="yes"), config)
        assert {e["hash"] for e in out["log"]} == {pinned_hash}
        # the resume stored the pin where 0.2 looks for it, and named it
        pins = list(s.list({"configurable": {"thread_id": thread, "checkpoint_ns": PIN_NAMESPACE}}))
        assert len(pins) == 1
        assert json.loads(pins[0].metadata[PIN_KEY])["format"] == "flagmw.pin/2"
        assert REF_KEY in graph.get_state(config).metadata


# -- constant reads on resume ---------------------------------------------------------


class Loop(TypedDict):
    n: int


def looping_graph(steps: int, saver: Any) -> Any:
    """``steps`` supersteps of one node, then an interrupt."""
    builder = StateGraph(Loop)
    builder.add_node("step", lambda s: {"n": s["n"] + 1})
    builder.add_node("ask", lambda s: {"n": s["n"] + len(str(interrupt("?")))})
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", lambda s: "step" if s["n"] < steps else "ask")
    builder.add_edge("ask", END)
    return builder.compile(checkpointer=saver)


class Counting:
    """Counts the checkpoints a saver reads (``get_tuple`` results and ``list`` items)."""

    reads = 0

    def get_tuple(self, config: Any) -> Any:
        self.reads += 1
        return super().get_tuple(config)  # type: ignore[misc]

    def list(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        for tup in super().list(*args, **kwargs):  # type: ignore[misc]
            self.reads += 1
            yield tup


class CountingMemory(Counting, InMemorySaver):
    pass


class CountingSqlite(Counting, SqliteSaver):
    pass


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_resume_of_a_400_superstep_thread_reads_a_constant_number_of_checkpoints(
    client: FlagClient, tmp_path: Path, kind: str
) -> None:
    steps = 400
    with contextlib.ExitStack() as stack:
        if kind == "memory":
            saver: Any = CountingMemory()
        else:
            conn = sqlite3.connect(tmp_path / "c.sqlite", check_same_thread=False)
            stack.callback(conn.close)
            saver = CountingSqlite(conn)
        bare = looping_graph(steps, saver)
        graph = flagmw.wrap(bare, client, tracer=False)
        config = cfg()
        config["recursion_limit"] = steps + 10
        graph.invoke({"n": 0}, config)
        assert graph.get_state(config).next == ("ask",)
        assert len(root_ids(saver, config["configurable"]["thread_id"])) > steps
        saver.reads = 0
        assert graph.get_pinned_config(config) is not None
        assert saver.reads == 2  # the checkpoint resumed and the pin (0.1: 402)
        # a whole resume reads what the bare graph's resume reads, plus those two
        bare_config = cfg()
        bare_config["recursion_limit"] = steps + 10
        with pinned(client.resolve()):
            bare.invoke({"n": 0}, bare_config)
            saver.reads = 0
            bare.invoke(Command(resume="ok"), bare_config)
        bare_reads = saver.reads
        saver.reads = 0
        out = graph.invoke(Command(resume="ok"), config)
        assert out["n"] == steps + 2
        assert saver.reads - bare_reads <= 2


# -- bytes ------------------------------------------------------------------------------


class SpanRef:
    """An observer that gives each invocation a span reference, as the trace writer does."""

    def run_started(self, run: RunState) -> None:
        run.span_ref = SPAN

    def activate(self, run: RunState) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def run_event(self, run: RunState, name: str, attributes: Any) -> None:
        pass

    def run_ended(self, run: RunState, outcome: Any, error: BaseException | None) -> None:
        pass


def test_bytes_per_checkpoint_and_per_thread(tmp_path: Path) -> None:
    big = FlagClient(make_registry(extra=44), MemoryStore(), environment="production")
    publish(big, 3, extra=44)
    big.override("extra.f002", False, reason="incident 42", actor="oncall", ttl="1h")
    names = tuple(f"n{i}" for i in range(30))
    rows: dict[bool, list[tuple[str, int, int]]] = {}
    pin_bytes = 0
    for wrapped in (False, True):
        path = tmp_path / f"{wrapped}.sqlite"
        with SqliteSaver.from_conn_string(str(path)) as s:
            graph = linear_graph(names, checkpointer=s)
            config = cfg(tenant_id="acme", user_id="u-17")
            if wrapped:
                graph = flagmw.wrap(graph, big, tracer=False, observers=[SpanRef()])
                graph.invoke({"log": []}, config)
            else:
                with pinned(big.resolve(EvaluationContext(tenant_id="acme"))):
                    graph.invoke({"log": []}, config)
        with sqlite3.connect(path) as db:
            rows[wrapped] = db.execute(
                "SELECT checkpoint_ns, LENGTH(metadata), LENGTH(checkpoint) FROM checkpoints "
                "ORDER BY checkpoint_ns, checkpoint_id"
            ).fetchall()
    pin_rows = [r for r in rows[True] if r[0] == PIN_NAMESPACE]
    root = [r for r in rows[True] if r[0] == ""]
    assert len(pin_rows) == 1
    assert len(root) == len(rows[False]) == len(names) + 2
    pin_bytes = pin_rows[0][1] + pin_rows[0][2]
    assert len(encode_pin(big.resolve(EvaluationContext(tenant_id="acme")))) > 2000  # 50 flags
    assert pin_bytes <= 4096  # the pin, once per thread
    extra = [w[1] - b[1] for w, b in zip(root, rows[False], strict=True)]
    first, *later = extra
    assert all(0 < e <= 100 for e in later), later  # flagmw.ref, with the span, per checkpoint
    assert first <= 300  # + flagmw.span, flagmw.snapshot_rev, flagmw.config_hash, once


# -- integrity ------------------------------------------------------------------------


def interrupted_sqlite_run(client: FlagClient, path: Path) -> dict[str, Any]:
    config = cfg(tenant_id="acme")
    with SqliteSaver.from_conn_string(str(path)) as s:
        graph = flagmw.wrap(
            linear_graph(("a", "b"), {"b": ask}, checkpointer=s), client, tracer=False
        )
        graph.invoke({"log": []}, config)
    return config


def edit_stored_pin(path: Path, edit: Any) -> None:
    with sqlite3.connect(path) as db:
        ((rowid, raw),) = db.execute(
            "SELECT rowid, metadata FROM checkpoints WHERE checkpoint_ns = ?", (PIN_NAMESPACE,)
        ).fetchall()
        meta = json.loads(raw)
        pin = json.loads(meta[PIN_KEY])
        edit(pin)
        meta[PIN_KEY] = json.dumps(pin)
        db.execute("UPDATE checkpoints SET metadata = ? WHERE rowid = ?", (json.dumps(meta), rowid))


def resume(client: FlagClient, path: Path, config: dict[str, Any]) -> dict[str, Any]:
    with SqliteSaver.from_conn_string(str(path)) as s:
        graph = flagmw.wrap(
            linear_graph(("a", "b"), {"b": ask}, checkpointer=s), client, tracer=False
        )
        out: dict[str, Any] = graph.invoke(Command(resume="ok"), config)
        return out


@pytest.mark.parametrize(
    "what",
    [
        pytest.param(lambda p: p["context"].update(tenant_id="globex"), id="tenant_id"),
        pytest.param(lambda p: p.update(snapshot_rev=p["snapshot_rev"] + 1), id="snapshot_rev"),
        pytest.param(lambda p: p.update(override_ids=["ov-someone-else"]), id="override_id"),
        pytest.param(lambda p: p["provenance"].pop(), id="provenance"),
    ],
)
def test_editing_the_stored_pin_is_an_integrity_error(
    client: FlagClient, tmp_path: Path, what: Any
) -> None:
    path = tmp_path / "c.sqlite"
    config = interrupted_sqlite_run(client, path)
    # a tenant kill the edited pin would lift: the run of tenant acme must stay killed
    client.kill("agent.enabled", reason="incident 7", actor="oncall", tenant="acme", ttl="1h")
    edit_stored_pin(path, what)
    with pytest.raises(IntegrityError, match=r"failed verification.*digest does not match"):
        resume(client, path, config)


def test_an_untouched_pin_verifies_and_resumes(client: FlagClient, tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    config = interrupted_sqlite_run(client, path)
    edit_stored_pin(path, lambda p: None)  # re-serialised by another JSON writer: still fine
    assert resume(client, path, config)["log"][-1]["node"] == "b"


def test_signed_pins(client: FlagClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLAGMW_PIN_KEY", "first key")
    path = tmp_path / "c.sqlite"
    config = interrupted_sqlite_run(client, path)
    with sqlite3.connect(path) as db:
        (raw,) = db.execute(
            "SELECT metadata FROM checkpoints WHERE checkpoint_ns = ?", (PIN_NAMESPACE,)
        ).fetchone()
    assert json.loads(json.loads(raw)[PIN_KEY])["digest"].startswith("hmac-sha256:")
    monkeypatch.setenv("FLAGMW_PIN_KEY", "another key")
    with pytest.raises(IntegrityError, match="signature does not match"):
        resume(client, path, config)
    monkeypatch.delenv("FLAGMW_PIN_KEY")
    with pytest.raises(IntegrityError, match=r"signed .* no key is configured"):
        resume(client, path, config)

    # an attacker without the key edits the tenant and recomputes an unkeyed digest
    def forge(pin: dict[str, Any]) -> None:
        pin["context"]["tenant_id"] = "globex"
        del pin["digest"]
        pin["digest"] = pin_digest(rfc8785.dumps(pin), None)

    edit_stored_pin(path, forge)
    monkeypatch.setenv("FLAGMW_PIN_KEY", "first key")
    with pytest.raises(IntegrityError, match="not signed"):
        resume(client, path, config)


def test_pin_key_argument_and_plain_forms() -> None:
    rc = pinned_config({"a.b": 1}, snapshot_rev=3, context=EvaluationContext(tenant_id="acme"))
    signed = encode_pin(rc, key=b"k")
    assert decode_pin(signed, key="k") == rc
    with pytest.raises(IntegrityError):
        decode_pin(signed)
    with pytest.raises(IntegrityError, match="no signature"):
        decode_pin(rc.to_json(), key="k")  # the plain RunConfig form carries no signature
    assert decode_pin(rc.to_json()) == rc


# -- the algorithm, a test vector and the properties ------------------------------------

#: The test vector of docs/langgraph.md ("Where the pin lives").
VECTOR = (
    '{"config_hash":"sha256:5c5b7b94a173cba5860d080bf0d1cbd9907e08048fb103cabe49c46fd9d4ff32",'
    '"context":{"tenant_id":"acme","user_id":"u-17","route":"support"},'
    '"digest":"sha256:4f73060191552f51f4d119882fc85607b71ae421f6d22b4d36a26e817e098226",'
    '"environment":"production","format":"flagmw.pin/2","override_ids":["ov-7"],'
    '"provenance":[[{"layer":"override","override_id":"ov-7","reason":"incident 42",'
    '"scope":"tenant:acme"},["agent.enabled"]],[{"layer":"tenant","rev":12,"rule":"enterprise",'
    '"scope":"acme"},["loop.max_iterations"]],[{"layer":"snapshot","rev":12,"scope":"global"},'
    '["model.primary","model.temperature"]]],"resolved_at":1764720000.0,'
    '"snapshot_hash":"sha256:0000000000000000000000000000000000000000000000000000000000000000",'
    '"snapshot_rev":12,"values":{"agent.enabled":false,"loop.max_iterations":5,'
    '"model.primary":"gpt-4o","model.temperature":0.5,"prompt.greeting":"Grüß dich"},'
    '"variants":{}}'
)


def vector_config() -> RunConfig:
    snap = Provenance(Layer.SNAPSHOT, rev=12, scope="global")
    tenant = Provenance(Layer.TENANT, rev=12, scope="acme", rule="enterprise")
    kill = Provenance(Layer.OVERRIDE, scope="tenant:acme", override_id="ov-7", reason="incident 42")
    values = {
        "agent.enabled": (False, kill),
        "loop.max_iterations": (5, tenant),
        "model.primary": ("gpt-4o", snap),
        "model.temperature": (0.5, snap),
        "prompt.greeting": ("Grüß dich", DEFAULT_PROVENANCE),
    }
    return RunConfig(
        {k: make_candidate(k, v, p) for k, (v, p) in sorted(values.items())},
        snapshot_rev=12,
        snapshot_hash="sha256:" + "0" * 64,
        environment="production",
        context=EvaluationContext(tenant_id="acme", user_id="u-17", route="support"),
        resolved_at=1764720000.0,
        override_ids=("ov-7",),
    )


def test_vector_digest_is_sha256_of_the_rfc8785_form_without_digest() -> None:
    body = json.loads(VECTOR)
    del body["digest"]
    payload = rfc8785.dumps(body)
    # RFC 8785: keys sorted, 1764720000.0 written 1764720000, UTF-8 kept
    assert b'"resolved_at":1764720000,' in payload
    assert "Grüß dich".encode() in payload
    assert hashlib.sha256(payload).hexdigest() == VECTOR_SHA256
    assert hmac.new(b"s3cret", payload, "sha256").hexdigest() == VECTOR_HMAC
    assert pin_digest(payload, None) == "sha256:" + VECTOR_SHA256
    assert pin_digest(payload, b"s3cret") == "hmac-sha256:" + VECTOR_HMAC


VECTOR_SHA256 = "4f73060191552f51f4d119882fc85607b71ae421f6d22b4d36a26e817e098226"
VECTOR_HMAC = "f47d02d3d666aadb8fdec3e6ec29cd902ca2d5852029d4a1f2b1dbcbed9ec26c"


def test_encode_pin_writes_the_vector() -> None:
    rc = vector_config()
    text = encode_pin(rc)
    expected = json.loads(VECTOR)
    # config_hash is the identity of the values (flagmw.core); the rest is the pin's
    expected["config_hash"] = rc.config_hash
    body = {k: v for k, v in expected.items() if k != "digest"}
    expected["digest"] = pin_digest(rfc8785.dumps(body), None)
    assert json.loads(text) == expected
    assert decode_pin(text) == rc
    signed = json.loads(encode_pin(rc, key="s3cret"))
    assert signed["digest"] == pin_digest(rfc8785.dumps(body), b"s3cret")


JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53) + 1, 2**53 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",))),
)
JSON = st.recursive(
    JSON_LEAF,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(alphabet=st.characters(blacklist_categories=("Cs",))), inner, max_size=4
        )
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_canonical_json_is_rfc8785(value: Any) -> None:
    assert _jcs(value) == rfc8785.dumps(value).decode("utf-8")


@settings(max_examples=100, deadline=None)
@given(
    values=st.dictionaries(
        st.from_regex(r"[a-z]{1,6}\.[a-z]{1,6}", fullmatch=True), JSON, max_size=10
    ),
    tenant=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8),
    rev=st.one_of(st.none(), st.integers(1, 10_000)),
)
def test_every_pin_verifies_with_the_documented_algorithm(
    values: dict[str, Any], tenant: str, rev: int | None
) -> None:
    rc = pinned_config(
        values, snapshot_rev=rev, context=EvaluationContext(tenant_id=tenant or None)
    )
    text = encode_pin(rc)
    data = json.loads(text)
    digest = data.pop("digest")
    try:
        payload = rfc8785.dumps(data)
    except rfc8785.IntegerDomainError:
        # an integer beyond ±(2**53 - 1): the documented extension writes its digits
        payload = canonical_json(data).encode("utf-8")
    assert digest == pin_digest(payload, None)
    back = decode_pin(text)
    assert back.config_hash == rc.config_hash
    # every value reads back as it was, floats inside json values included
    assert json.dumps(dict(back), sort_keys=True) == json.dumps(dict(rc), sort_keys=True)
    assert json.loads(encode_pin(back))["digest"] == digest


def test_a_large_float_inside_a_json_value_reads_back_as_the_same_float() -> None:
    value = [5.077929799959558e16, {"x": 1.0, "y": 1e-7}]
    rc = pinned_config({"a.list": value})
    back = decode_pin(encode_pin(rc))
    assert back["a.list"] == value
    assert type(back["a.list"][0]) is float
    assert type(back["a.list"][1]["x"]) is float
    assert back.config_hash == rc.config_hash


def test_find_pin_reports_the_span_and_the_reference(client: FlagClient) -> None:
    saver = InMemorySaver()
    graph = flagmw.wrap(
        linear_graph(("a", "b"), {"b": ask}, checkpointer=saver),
        client,
        tracer=False,
        observers=[SpanRef()],
    )
    config = cfg()
    graph.invoke({"log": []}, config)
    found = find_pin(saver, config)
    assert found.pin is not None
    assert found.span == SPAN
    assert found.exists
    assert graph.get_state(config).metadata[REF_KEY] == f"{found.ref} {SPAN}"
    assert SPAN_KEY not in graph.get_state(config).metadata  # on the invocation's first only


def test_keys_outside_ascii_are_canonicalized_in_utf16_order() -> None:
    # Python sorts U+FFFF before U+1F600; RFC 8785 (UTF-16 code units) the other way round
    rc = pinned_config({"\uffff.a": 1, "\U0001f600.b": [1.0, {"\uffff": 2, "\U0001f600": 3}]})
    assert list(rc) == ["\uffff.a", "\U0001f600.b"]
    text = encode_pin(rc)
    data = json.loads(text)
    digest = data.pop("digest")
    try:
        payload = rfc8785.dumps(data)
    except rfc8785.IntegerDomainError:
        # an integer beyond ±(2**53 - 1): the documented extension writes its digits
        payload = canonical_json(data).encode("utf-8")
    assert digest == pin_digest(payload, None)
    assert decode_pin(text) == rc


async def test_async_resume_after_deletion_reads_two_checkpoints(client: FlagClient) -> None:
    saver = CountingMemory()
    graph = flagmw.wrap(
        linear_graph(("a1", "a2", "b"), {"b": ask}, checkpointer=saver), client, tracer=False
    )
    config = cfg()
    thread = config["configurable"]["thread_id"]
    pinned_hash = (await graph.ainvoke({"log": []}, config))["log"][0]["hash"]
    delete_older_checkpoints(saver, thread)
    publish(client, 2)
    saver.reads = 0
    assert (await graph.aget_pinned_config(config)).config_hash == pinned_hash  # type: ignore[union-attr]
    assert saver.reads == 2
    out = await graph.ainvoke(Command(resume="yes"), config)
    assert {e["hash"] for e in out["log"]} == {pinned_hash}


def test_checkpoints_written_without_the_wrapper_are_walked_back(client: FlagClient) -> None:
    saver = CountingMemory()
    bare = linear_graph(("a", "b"), {"b": ask}, checkpointer=saver)
    graph = flagmw.wrap(bare, client, tracer=False)
    config = cfg()
    pinned_hash = graph.invoke({"log": []}, config)["log"][0]["hash"]
    for _ in range(3):  # the bare graph (its own saver) writes checkpoints naming no pin
        bare.update_state(config, {"log": [{"node": "human"}]})
    assert REF_KEY not in bare.get_state(config).metadata
    saver.reads = 0
    assert graph.get_pinned_config(config).config_hash == pinned_hash  # type: ignore[union-attr]
    assert saver.reads == 5  # the latest, two more back to one that names the pin, the pin
    publish(client, 2)
    out = graph.invoke(Command(resume="yes"), config)
    assert {e["hash"] for e in out["log"] if "hash" in e} == {pinned_hash}
    assert REF_KEY in graph.get_state(config).metadata  # named again from then on


def test_a_digest_less_form_put_in_place_of_the_pin_is_refused(
    client: FlagClient, tmp_path: Path
) -> None:
    path = tmp_path / "c.sqlite"
    config = interrupted_sqlite_run(client, path)

    def downgrade(pin: dict[str, Any]) -> None:  # decode_pin reads 0.1 and plain forms
        rc = decode_pin(json.dumps(pin))
        data = json.loads(rc.to_json())
        data["context"]["tenant_id"] = "globex"
        pin.clear()
        pin.update(data)

    edit_stored_pin(path, downgrade)
    with pytest.raises(IntegrityError, match=r"not 'flagmw.pin/2'.*refused"):
        resume(client, path, config)


def test_hot_changes_are_covered_by_the_digest() -> None:
    before = pinned_config({"a.b": 1, "c.d": 1.5, "e.f": [1.0, {"x": 2}]}, snapshot_rev=3)
    after = pinned_config({"a.b": 2, "c.d": 2.0, "e.f": [1.0, {"x": 3}]}, snapshot_rev=4)
    rc = before.with_hot(after, {"a.b", "c.d", "e.f"}, at=1764720000.5, step=3)
    assert len(rc.changes) == 3
    text = encode_pin(rc)
    data = json.loads(text)
    digest = data.pop("digest")
    try:
        payload = rfc8785.dumps(data)
    except rfc8785.IntegerDomainError:
        # an integer beyond ±(2**53 - 1): the documented extension writes its digits
        payload = canonical_json(data).encode("utf-8")
    assert digest == pin_digest(payload, None)
    assert decode_pin(text) == rc
    data["changes"][0]["step"] = 4  # a change rewritten
    data["digest"] = digest
    with pytest.raises(IntegrityError, match="digest does not match"):
        decode_pin(json.dumps(data))
