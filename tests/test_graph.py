"""flagmw.wrap: pinning in the checkpoint and resume, on real graphs and checkpointers.

What is proven here:
* a run's RunConfig is resolved once, written into exactly one checkpoint of the thread,
  and rehydrated (hash verified) on ``Command(resume=...)`` even after many publishes —
  on InMemorySaver, SqliteSaver (a file) and PostgresSaver;
* later checkpoints carry no ``flagmw.*`` metadata (the pin does not grow with steps);
* the resume policies ``pinned`` / ``live`` / ``fail_if_changed``, a tampered pin
  (``IntegrityError``), a thread without a pin, a graph without checkpointer;
* the evaluation context built from the config, and ``current()`` outside a run.
"""

from __future__ import annotations

import itertools
import json
import logging
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from graph_workers.support import (
    PINNED,
    LogState,
    linear_graph,
    make_registry,
    publish,
    rev_of,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import START, StateGraph
from langgraph.types import Command, interrupt

import flagmw
from flagmw import EvaluationContext, FlagClient, IntegrityError, MemoryStore, NoRunConfigError
from flagmw.errors import ConfigChangedError
from flagmw.langgraph.checkpointer import PinningCheckpointer
from flagmw.langgraph.context import SECRET_WORDS, context_from_config, is_secret_key
from flagmw.langgraph.keys import (
    CONFIG_HASH_KEY,
    PIN_FORMAT,
    PIN_KEY,
    PIN_NAMESPACE,
    REF_KEY,
    SNAPSHOT_REV_KEY,
)
from flagmw.langgraph.pin import decode_pin, encode_pin
from flagmw.testing import pinned, pinned_config


@pytest.fixture
def client() -> Iterator[FlagClient]:
    c = FlagClient(make_registry(), MemoryStore(), environment="test")
    publish(c, 1)
    yield c
    c.close()


def ask(name: str, seen: dict[str, Any]) -> dict[str, Any]:
    """A node hook that waits for a human: the run is interrupted here."""
    return {"answer": interrupt(f"approve {name}?")}


def cfg(thread: str | None = None, **configurable: Any) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread or f"t-{uuid.uuid4().hex[:8]}", **configurable}}


def root_metadata(saver: Any, config: dict[str, Any]) -> list[dict[str, Any]]:
    """The metadata of every root checkpoint of the thread, oldest first."""
    base = {"configurable": {"thread_id": config["configurable"]["thread_id"], "checkpoint_ns": ""}}
    return [dict(t.metadata) for t in reversed(list(saver.list(base)))]


def stored_pins(saver: Any, config: dict[str, Any]) -> list[str]:
    """The pins stored for the thread (its ``flagmw.pin`` namespace), oldest first."""
    thread = config["configurable"]["thread_id"]
    base = {"configurable": {"thread_id": thread, "checkpoint_ns": PIN_NAMESPACE}}
    return [t.metadata[PIN_KEY] for t in reversed(list(saver.list(base)))]


# -- pin and resume -------------------------------------------------------------------


def test_interrupt_publish_ten_snapshots_resume_keeps_the_pinned_config(
    client: FlagClient, saver: Any
) -> None:
    graph = flagmw.wrap(
        linear_graph(("a", "b", "c"), {"b": ask}, checkpointer=saver), client, tracer=False
    )
    config = cfg(tenant_id="acme", user_id="u-17")
    first = graph.invoke({"log": []}, config)
    assert "__interrupt__" in first
    before = first["log"][0]
    assert rev_of(before["pinned"]) == before["rev"] == 1

    for n in range(2, 12):  # 10 new snapshots, each changing every pinned flag
        publish(client, n)
    assert client.snapshot_rev == 11
    fresh = client.resolve(EvaluationContext(tenant_id="acme", user_id="u-17"))
    assert fresh.config_hash != before["hash"]
    assert rev_of(fresh) == 11

    out = graph.invoke(Command(resume="yes"), config)
    seen = [e for e in out["log"] if e["node"] in ("b", "c")]
    assert [e["node"] for e in seen] == ["b", "c"]
    for entry in seen:
        assert entry["resumed"] is True
        assert entry["hash"] == before["hash"]
        assert entry["rev"] == 1
        assert entry["pinned"] == before["pinned"]
    assert seen[0]["answer"] == "yes"

    pinned = graph.get_pinned_config(config)
    assert pinned is not None
    assert pinned.config_hash == before["hash"]
    # the stored form is JSON primitives, one pin for the whole thread
    pins = stored_pins(saver, config)
    assert len(pins) == 1
    assert len({m[REF_KEY] for m in root_metadata(saver, config)}) == 1
    assert isinstance(pins[0], str)
    assert decode_pin(json.loads(json.dumps(pins[0]))) == pinned


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
def test_pin_and_resume_under_every_durability_mode(
    client: FlagClient, tmp_path: Path, durability: str
) -> None:
    with SqliteSaver.from_conn_string(str(tmp_path / "c.sqlite")) as saver:
        graph = flagmw.wrap(
            linear_graph(("a", "b", "c"), {"b": ask}, checkpointer=saver), client, tracer=False
        )
        config = cfg()
        first = graph.invoke({"log": []}, config, durability=durability)
        publish(client, 2)
        out = graph.invoke(Command(resume="ok"), config, durability=durability)
        assert {e["hash"] for e in out["log"]} == {first["log"][0]["hash"]}
        assert len(stored_pins(saver, config)) == 1
        assert not any(PIN_KEY in m for m in root_metadata(saver, config))


async def test_async_interrupt_and_resume_keeps_the_pin(client: FlagClient) -> None:
    saver = InMemorySaver()
    graph = flagmw.wrap(
        linear_graph(("a", "b", "c"), {"b": ask}, checkpointer=saver), client, tracer=False
    )
    config = cfg()
    first = await graph.ainvoke({"log": []}, config)
    for n in range(2, 12):
        publish(client, n)
    chunks = [c async for c in graph.astream(Command(resume="ok"), config, stream_mode="values")]
    final = chunks[-1]["log"]
    assert {e["hash"] for e in final} == {first["log"][0]["hash"]}
    assert [e["node"] for e in final] == ["a", "b", "c"]
    assert await graph.aget_pinned_config(config) == graph.get_pinned_config(config)


def test_pin_is_written_once_and_later_checkpoints_carry_only_its_reference(
    client: FlagClient, saver: Any
) -> None:
    names = tuple(f"n{i}" for i in range(12))
    graph = flagmw.wrap(linear_graph(names, checkpointer=saver), client, tracer=False)
    config = cfg(tenant_id="acme")
    graph.invoke({"log": []}, config)
    metas = root_metadata(saver, config)
    assert len(metas) == len(names) + 2  # input, one per node, and the start checkpoint
    first, *later = metas
    (pin,) = stored_pins(saver, config)
    assert json.loads(pin)["config_hash"] == first[CONFIG_HASH_KEY]
    assert first[SNAPSHOT_REV_KEY] == 1
    for meta in later:
        assert [k for k in meta if k.startswith("flagmw.")] == [REF_KEY], meta
        assert meta[REF_KEY] == first[REF_KEY]
    # a second turn on the same thread is a new run: it pins again, once
    publish(client, 2)
    graph.invoke({"log": []}, config)
    pins = stored_pins(saver, config)
    assert len(pins) == 2
    assert json.loads(pins[-1])["snapshot_rev"] == 2
    metas = root_metadata(saver, config)
    assert len({m[REF_KEY] for m in metas}) == 2


def test_pin_lookup_respects_an_explicit_checkpoint_id(client: FlagClient) -> None:
    saver = InMemorySaver()
    graph = flagmw.wrap(linear_graph(("a", "b"), checkpointer=saver), client, tracer=False)
    config = cfg()
    graph.invoke({"log": []}, config)
    old_state = graph.get_state(config)
    publish(client, 2)
    graph.invoke({"log": []}, config)  # second turn: rev 2
    assert graph.get_pinned_config(config).snapshot_rev == 2  # type: ignore[union-attr]
    at_first = graph.get_pinned_config(old_state.config)
    assert at_first is not None
    assert at_first.snapshot_rev == 1


def test_checkpoints_of_a_wrapped_graph_are_those_of_the_bare_graph_plus_one_pin(
    client: FlagClient, tmp_path: Path
) -> None:
    """Bytes: a wrapped run adds only the first checkpoint's pin to a SqliteSaver file."""
    names = tuple(f"n{i}" for i in range(6))

    def plain_graph(saver: Any) -> Any:
        builder = StateGraph(LogState)
        for name in names:  # nodes read a flag and log something of a fixed size
            builder.add_node(
                name, lambda s, n=name: {"log": [{n: flagmw.current()["prompt.version"]}]}
            )
        builder.add_edge(START, names[0])
        for a, b in itertools.pairwise(names):
            builder.add_edge(a, b)
        return builder.compile(checkpointer=saver)

    def total(path: Path) -> tuple[int, int]:
        with sqlite3.connect(path) as db:
            meta, ckpt = db.execute(
                "SELECT SUM(LENGTH(metadata)), SUM(LENGTH(checkpoint)) FROM checkpoints"
            ).fetchone()
        return meta, ckpt

    sizes, stored = {}, {}
    for wrapped in (False, True):
        path = tmp_path / f"{wrapped}.sqlite"
        with SqliteSaver.from_conn_string(str(path)) as s:
            g = plain_graph(s)
            run_config = cfg("same-thread", tenant_id="acme")
            if wrapped:
                flagmw.wrap(g, client, tracer=False).invoke({"log": []}, run_config)
            else:  # the bare graph's nodes need a RunConfig: pin one around the graph
                with pinned(client.resolve(EvaluationContext(tenant_id="acme"))):
                    g.invoke({"log": []}, run_config)
            sizes[wrapped] = total(path)
            stored[wrapped] = [
                (dict(t.metadata), t.checkpoint["channel_values"])
                for t in reversed(list(s.list(cfg("same-thread", checkpoint_ns=""))))
            ]
            if wrapped:
                pins = stored_pins(s, run_config)
    (pin,) = pins
    added_meta = sizes[True][0] - sizes[False][0]
    # the pin (JSON-escaped inside the metadata JSON) plus rev and hash keys, and a
    # reference to the pin on every checkpoint, nothing else
    refs = len(stored[True]) * len(f',"{REF_KEY}":"{"0" * 32}"')
    assert len(pin) + refs <= added_meta <= len(pin) * 1.3 + refs + 200
    assert len(stored[True]) == len(stored[False]) == len(names) + 2
    for i, ((meta_w, values_w), (meta_b, values_b)) in enumerate(
        zip(stored[True], stored[False], strict=True)
    ):
        assert values_w == values_b  # channel values are untouched
        extra = {k: v for k, v in meta_w.items() if k not in meta_b}
        assert set(extra) == ({REF_KEY, SNAPSHOT_REV_KEY, CONFIG_HASH_KEY} if i == 0 else {REF_KEY})


@settings(max_examples=60, deadline=None)
@given(
    values=st.dictionaries(
        st.from_regex(r"[a-z]{1,6}\.[a-z]{1,6}", fullmatch=True),
        st.one_of(
            st.booleans(),
            st.integers(-(2**53), 2**53),
            st.text(max_size=8),
            st.lists(st.integers(), max_size=3),
        ),
        max_size=12,
    ),
    rev=st.one_of(st.none(), st.integers(1, 10_000)),
)
def test_pin_encoding_round_trips_exactly(values: dict[str, Any], rev: int | None) -> None:
    rc = pinned_config(values, snapshot_rev=rev, context=EvaluationContext(tenant_id="acme"))
    text = encode_pin(rc)
    assert json.loads(text)["format"] == PIN_FORMAT
    back = decode_pin(text)
    assert back == rc
    assert back.config_hash == rc.config_hash
    assert decode_pin(rc.to_json()) == rc  # the plain RunConfig form is accepted too


def test_pin_groups_provenance_and_stays_small(client: FlagClient) -> None:
    registry = make_registry(extra=44)
    big = FlagClient(registry, MemoryStore(), environment="production")
    publish(big, 3, extra=44)
    big.override("extra.f002", False, reason="incident 42", actor="oncall", ttl="1h")
    rc = big.resolve(EvaluationContext(tenant_id="acme", user_id="u-17", route="support"))
    assert len(rc) == 50
    text = encode_pin(rc)
    groups = json.loads(text)["provenance"]
    assert len(groups) < 5  # snapshot, tenant, override … not one per flag
    assert len(json.dumps(text)) <= 4096  # JSON-escaped as savers store it
    assert decode_pin(text) == rc


def test_malformed_pins_are_integrity_errors(client: FlagClient) -> None:
    text = encode_pin(client.resolve())
    data = json.loads(text)
    for bad in (
        "not json",
        json.dumps({**data, "provenance": [["x"]]}),
        json.dumps({**data, "values": {**data["values"], "prompt.version": 999}}),
        json.dumps({**data, "format": "something/1"}),
    ):
        with pytest.raises(IntegrityError):
            decode_pin(bad)


# -- resume policies ------------------------------------------------------------------


def interrupted_run(client: FlagClient, on_resume: Any) -> tuple[Any, dict[str, Any], str]:
    saver = InMemorySaver()
    graph = flagmw.wrap(
        linear_graph(("a", "b"), {"b": ask}, checkpointer=saver),
        client,
        on_resume=on_resume,
        tracer=False,
    )
    config = cfg(tenant_id="acme")
    first = graph.invoke({"log": []}, config)
    return graph, config, first["log"][0]["hash"]


def test_on_resume_live_resolves_fresh_and_pins_the_new_config(client: FlagClient) -> None:
    graph, config, pinned_hash = interrupted_run(client, "live")
    publish(client, 2)
    out = graph.invoke(Command(resume="ok"), config)
    b = out["log"][-1]
    assert b["rev"] == 2
    assert rev_of(b["pinned"]) == 2
    assert b["hash"] != pinned_hash
    stored = graph.get_pinned_config(config)
    assert stored is not None
    assert stored.snapshot_rev == 2


def test_on_resume_fail_if_changed_raises_before_running(client: FlagClient) -> None:
    graph, config, pinned_hash = interrupted_run(client, "fail_if_changed")
    before = graph.get_state(config)
    publish(client, 2)
    with pytest.raises(ConfigChangedError) as err:
        graph.invoke(Command(resume="ok"), config)
    assert err.value.pinned_hash == pinned_hash
    assert set(err.value.changed) == set(PINNED)
    assert "fail_if_changed" in str(err.value)
    assert isinstance(err.value, flagmw.FlagmwError)
    after = graph.get_state(config)
    assert after.config == before.config
    assert after.next == ("b",)


def test_on_resume_fail_if_changed_ignores_hot_flags(client: FlagClient) -> None:
    graph, config, _pinned_hash = interrupted_run(client, "fail_if_changed")
    client.override("loop.max_iterations", 3, reason="incident", actor="oncall", ttl="1h")
    out = graph.invoke(Command(resume="ok"), config)
    b = out["log"][-1]
    assert b["rev"] == 1
    assert b["hot"]["loop.max_iterations"] == 3


def test_tampered_pin_raises_integrity_error(client: FlagClient, tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with SqliteSaver.from_conn_string(str(path)) as s:
        graph = flagmw.wrap(
            linear_graph(("a", "b"), {"b": ask}, checkpointer=s), client, tracer=False
        )
        config = cfg()
        graph.invoke({"log": []}, config)
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT rowid, metadata FROM checkpoints").fetchall()
        for rowid, raw in rows:
            meta = json.loads(raw)
            if PIN_KEY in meta:
                pin = json.loads(meta[PIN_KEY])
                pin["values"]["model.primary"] = "o3"  # what an attacker would change
                meta[PIN_KEY] = json.dumps(pin)
                db.execute(
                    "UPDATE checkpoints SET metadata = ? WHERE rowid = ?",
                    (json.dumps(meta), rowid),
                )
    with SqliteSaver.from_conn_string(str(path)) as s:
        graph = flagmw.wrap(
            linear_graph(("a", "b"), {"b": ask}, checkpointer=s), client, tracer=False
        )
        with pytest.raises(IntegrityError, match="failed verification"):
            graph.invoke(Command(resume="ok"), config)


def test_resume_of_a_thread_without_pin_fails_unless_live(
    client: FlagClient, caplog: pytest.LogCaptureFixture
) -> None:
    saver = InMemorySaver()
    bare = linear_graph(("a", "b"), {"b": ask}, checkpointer=saver)
    config = cfg()
    with pinned(client.resolve()):  # the run started before the graph was wrapped
        bare.invoke({"log": []}, config)
    assert bare.get_state(config).next == ("b",)
    publish(client, 2)
    # on_resume="pinned" (the default) cannot keep a config it cannot find: it fails
    # instead of silently resolving a new one (issue 7, bug 3.2)
    for policy in ("pinned", "fail_if_changed"):
        strict = flagmw.wrap(bare, client, tracer=False, on_resume=policy)  # type: ignore[arg-type]
        with pytest.raises(IntegrityError, match=r"name no pin.*on_resume='live'"):
            strict.invoke(Command(resume="ok"), config)
    assert bare.get_state(config).next == ("b",)  # nothing ran
    graph = flagmw.wrap(bare, client, tracer=False, on_resume="live")
    with caplog.at_level(logging.WARNING, logger="flagmw"):
        out = graph.invoke(Command(resume="ok"), config)
    assert "no pinned RunConfig" in caplog.text
    assert out["log"][-1]["rev"] == 2
    assert graph.get_pinned_config(config).snapshot_rev == 2  # type: ignore[union-attr]


def test_without_checkpointer_the_pin_lives_for_one_invocation(client: FlagClient) -> None:
    graph = flagmw.wrap(linear_graph(("a", "b")), client, tracer=False)
    first = graph.invoke({"log": []})
    publish(client, 2)
    second = graph.invoke({"log": []})
    assert {e["rev"] for e in first["log"]} == {1}
    assert {e["rev"] for e in second["log"]} == {2}
    with pytest.raises(ValueError, match="no checkpointer"):
        graph.get_pinned_config(cfg())


# -- wrapping -------------------------------------------------------------------------


def test_wrap_does_not_touch_the_users_graph_and_rewrap_replaces_flagmw(
    client: FlagClient,
) -> None:
    saver = InMemorySaver()
    bare = linear_graph(("a",), checkpointer=saver)
    before = dict(bare.__dict__)
    graph = flagmw.wrap(bare, client, tracer=False)
    assert bare.__dict__ == before
    assert type(bare).__name__ == "CompiledStateGraph"
    assert isinstance(graph, type(bare))
    assert isinstance(graph.checkpointer, PinningCheckpointer)
    assert graph.checkpointer.inner is saver
    other = FlagClient(make_registry(), MemoryStore(), environment="test")
    publish(other, 1)
    publish(other, 2)
    again = flagmw.wrap(graph, other, tracer=False)
    assert type(again).__mro__.count(type(again).__mro__[1]) == 1
    assert again.checkpointer.inner is saver
    assert again.invoke({"log": []}, cfg())["log"][0]["rev"] == 2


def test_wrap_rejects_bad_arguments(client: FlagClient) -> None:
    with pytest.raises(TypeError, match="compiled LangGraph graph"):
        flagmw.wrap(object(), client)  # type: ignore[type-var]
    with pytest.raises(ValueError, match="on_resume"):
        flagmw.wrap(linear_graph(("a",)), client, on_resume="sometimes")  # type: ignore[arg-type]


def test_run_metadata_carries_rev_and_hash(client: FlagClient) -> None:
    from langgraph.config import get_config

    seen: dict[str, Any] = {}

    def hook(name: str, obs: dict[str, Any]) -> None:
        seen.update(get_config()["metadata"])

    graph = flagmw.wrap(linear_graph(("a",), {"a": hook}), client, tracer=False)
    graph.invoke({"log": []})
    assert seen[SNAPSHOT_REV_KEY] == 1
    assert seen[CONFIG_HASH_KEY] == client.resolve(EvaluationContext(route="LangGraph")).config_hash


# -- evaluation context ---------------------------------------------------------------


def test_context_from_config_reads_configurable() -> None:
    run_id = uuid.uuid4()
    ctx = context_from_config(
        {
            "run_id": run_id,
            "configurable": {
                "thread_id": "t-1",
                "tenant_id": "acme",
                "user_id": 17,
                "plan": "enterprise",
                "region": "eu",
                "seats": 40,
                "api_key": "sk-secret",
                "AuthHeader": "x",
                "__pregel_task_id": "x",
                "checkpoint_ns": "",
                "environment": "staging",
                "callbacks_obj": object(),
            },
        },
        route="support",
    )
    assert ctx.tenant_id == "acme"
    assert ctx.user_id == "17"
    assert ctx.thread_id == "t-1"
    assert ctx.plan == "enterprise"
    assert ctx.route == "support"
    assert ctx.run_id == str(run_id)
    assert ctx.environment is None
    assert dict(ctx.attributes) == {"region": "eu", "seats": 40}


def test_context_keeps_keys_that_only_contain_a_secret_word() -> None:
    """Bug 3.9: the secret filter matched substrings, so ``max_tokens``, ``author`` and
    ``keyboard`` were dropped from the context; it now matches whole words."""
    kept = {"max_tokens": 512, "author": "ann", "keyboard": "qwerty", "monkey": 1}
    dropped = {
        "api_key": "sk",
        "OPENAI_API_KEY": "sk",
        "apiKey": "sk",
        "APIKey": "sk",
        "x-auth-token": "t",
        "authorization": "Bearer x",
        "db.password": "p",
        "clientSecret": "s",
        "credentials": "c",
        "token": "t",
    }
    ctx = context_from_config({"configurable": {**kept, **dropped}})
    assert dict(ctx.attributes) == kept
    assert all(is_secret_key(k) for k in dropped)
    assert not any(is_secret_key(k) for k in kept)


_word = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8)


@given(
    words=st.lists(_word, min_size=1, max_size=4),
    secret=st.sampled_from(sorted(SECRET_WORDS)),
    at=st.integers(min_value=0, max_value=4),
    sep=st.sampled_from(["_", "-", ".", "camel"]),
)
@settings(max_examples=300, deadline=None)
def test_secret_rule_is_by_whole_word(words: list[str], secret: str, at: int, sep: str) -> None:
    """For all keys: a key with a secret word among its words is dropped; a key none of
    whose words (nor the whole key) is a secret word is kept, whatever it contains."""

    def join(parts: list[str]) -> str:
        if sep == "camel":
            return parts[0] + "".join(p.capitalize() for p in parts[1:])
        return sep.join(parts)

    with_secret = [*words[:at], secret, *words[at:]]
    assert is_secret_key(join(with_secret))
    ctx = context_from_config({"configurable": {join(with_secret): "v"}})
    assert dict(ctx.attributes) == {}
    plain = [w for w in words if w not in SECRET_WORDS]
    if plain and join(plain).lower() not in SECRET_WORDS:
        if sep == "camel" and any(w.lower() in SECRET_WORDS for w in _split_camel(join(plain))):
            return  # camel joins may make new words ("pass" + "Word")
        key = join(plain)
        assert not is_secret_key(key), key
        ctx = context_from_config({"configurable": {key: "v"}})
        if key not in ("thread_id", "environment", "thread_ts", "tenant_id", "user_id"):
            assert key in ctx.attributes or key in ("plan", "route", "run_id"), key


def _split_camel(key: str) -> list[str]:
    import re

    return re.findall(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+", key)


def test_context_route_and_run_id_reach_the_run(client: FlagClient) -> None:
    seen: list[EvaluationContext] = []
    graph = flagmw.wrap(
        linear_graph(("a",), {"a": lambda n, o: seen.append(flagmw.current().context)}),
        client,
        name="support",
        tracer=False,
    )
    graph.invoke({"log": []}, {"configurable": {"tenant_id": "acme", "route": "refunds"}})
    graph.invoke({"log": []}, {"configurable": {"tenant_id": "acme"}})
    assert seen[0].route == "refunds"
    assert seen[1].route == "support"
    assert seen[0].run_id
    assert seen[0].run_id != seen[1].run_id
    uuid.UUID(seen[0].run_id)


def test_the_langchain_root_run_has_the_context_run_id(client: FlagClient) -> None:
    """The wrapper gives LangChain's root run the run id of the evaluation context (a
    UUID v7, as LangChain makes its own), so the context, the trace and LangSmith name
    the same run."""
    from langchain_core.callbacks import BaseCallbackHandler

    roots: list[uuid.UUID] = []

    class Roots(BaseCallbackHandler):
        def on_chain_start(self, serialized: Any, inputs: Any, **kw: Any) -> None:
            if kw.get("parent_run_id") is None:
                roots.append(kw["run_id"])

    seen: list[EvaluationContext] = []
    graph = flagmw.wrap(
        linear_graph(("a",), {"a": lambda n, o: seen.append(flagmw.current().context)}),
        client,
        tracer=False,
    )
    graph.invoke({"log": []}, {"configurable": {"tenant_id": "acme"}, "callbacks": [Roots()]})
    assert len(roots) == 1
    assert isinstance(roots[0], uuid.UUID)
    assert str(roots[0]) == seen[0].run_id
    assert roots[0].version == 7


def test_custom_context_builder(client: FlagClient) -> None:
    calls: list[tuple[Any, Any]] = []

    def build(config: Any, input: Any) -> EvaluationContext:
        calls.append((config, input))
        return EvaluationContext(tenant_id=input["log"][0]["tenant"])

    graph = flagmw.wrap(
        linear_graph(("a",), {"a": lambda n, o: {"tenant": flagmw.current().context.tenant_id}}),
        client,
        context=build,
        tracer=False,
    )
    out = graph.invoke({"log": [{"tenant": "acme"}]})
    assert out["log"][-1]["tenant"] == "acme"
    assert out["log"][-1]["hot"]["loop.max_iterations"] == 5  # acme's overlay
    bad = flagmw.wrap(linear_graph(("a",)), client, context=lambda c, i: {}, tracer=False)  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="EvaluationContext"):
        bad.invoke({"log": []})


# -- current() ------------------------------------------------------------------------


def test_current_outside_a_run() -> None:
    with pytest.raises(NoRunConfigError, match="outside a run"):
        flagmw.current()
    assert flagmw.current(optional=True) is None


async def test_current_outside_a_run_async() -> None:
    with pytest.raises(NoRunConfigError):
        flagmw.current()
    assert flagmw.current(optional=True) is None
