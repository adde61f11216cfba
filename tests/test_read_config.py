"""What the wrapper reads of an invocation's config (``read_config``) is what the whole
merge (``effective_config``) gives for ``configurable`` and ``run_id``, in every case:
outside a runnable, with a graph default config, inside another graph's node (issue 7
§5: the merge is skipped only when there is nothing to merge)."""

from __future__ import annotations

import uuid
from typing import Any, TypedDict

from hypothesis import given, settings
from hypothesis import strategies as st
from langgraph.graph import START, StateGraph

from flagmw.langgraph.context import effective_config, read_config

SCALAR = st.one_of(st.none(), st.text(max_size=5), st.integers(), st.booleans())
CONF = st.dictionaries(
    st.sampled_from(["thread_id", "tenant_id", "user_id", "checkpoint_ns", "plan", "x"]),
    SCALAR,
    max_size=5,
)
CONFIGS = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={
            "configurable": st.one_of(st.none(), CONF),
            "run_id": st.just(uuid.UUID(int=7)),
            "tags": st.just(["t"]),
            "metadata": st.just({"m": 1}),
        },
    ),
)


def _read(config: dict[str, Any]) -> tuple[Any, Any]:
    return dict(config.get("configurable") or {}), config.get("run_id")


@settings(max_examples=200, deadline=None)
@given(graph_config=st.one_of(st.none(), st.just({}), CONFIGS), config=CONFIGS)
def test_outside_a_runnable_it_reads_what_the_merge_gives(graph_config: Any, config: Any) -> None:
    assert _read(read_config(graph_config, config)) == _read(effective_config(graph_config, config))


def test_nothing_to_merge_is_the_config_itself() -> None:
    config = {"configurable": {"thread_id": "t"}}
    assert read_config(None, config) is config
    assert read_config(None, None) == {"configurable": {}}
    assert read_config(None, {"run_id": 1}) == {"run_id": 1, "configurable": {}}


class S(TypedDict, total=False):
    seen: Any


def test_inside_a_node_it_merges_the_ambient_config() -> None:
    seen: list[tuple[Any, Any]] = []

    def node(state: S) -> dict[str, Any]:
        given = {"configurable": {"tenant_id": "inner"}}
        seen.append((_read(read_config(None, given)), _read(effective_config(None, given))))
        return {}

    builder = StateGraph(S)
    builder.add_node("n", node)
    builder.add_edge(START, "n")
    builder.compile().invoke({}, {"configurable": {"user_id": "outer-user"}})
    ((read, merged),) = seen
    assert read == merged
    assert read[0]["tenant_id"] == "inner"
    assert read[0]["user_id"] == "outer-user"
