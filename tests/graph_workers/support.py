"""Shared pieces of the flagmw.wrap tests and of the worker processes they start.

Imported as ``graph_workers.support`` by tests and as ``support`` by the scripts in this
folder (run as ``python tests/graph_workers/<script>.py``).

The registry has pinned flags whose values every snapshot derives from its own rev
(:func:`snapshot`), so a recorded value tells which rev it came from, and hot flags
(``agent.enabled`` is a run kill).
"""

from __future__ import annotations

import itertools
import operator
import time
from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypedDict

from langgraph.config import get_config
from langgraph.graph import END, START, StateGraph

import flagmw
from flagmw import Flag, FlagRegistry
from flagmw.run import current_run

MODELS = ("gpt-4o", "gpt-4o-mini", "o3")
#: pinned flags whose value every snapshot derives from its rev
PINNED = ("model.primary", "prompt.version", "loop.budget")
HOT = ("agent.enabled", "tools.refund_api.enabled", "loop.max_iterations")


def make_registry(extra: int = 0) -> FlagRegistry:
    """The test registry; ``extra`` adds pinned bool flags ``extra.f000`` … (to reach a
    realistic size, e.g. 50 flags)."""
    flags = [
        Flag("model.primary", "enum", "gpt-4o", choices=MODELS, owner="platform"),
        Flag("prompt.version", "int", 0, min=0, max=100_000, owner="ux"),
        Flag("loop.budget", "int", 0, min=0, max=1_000_000, owner="platform"),
        Flag("agent.enabled", "bool", True, binding="hot", run_kill=True, owner="platform"),
        Flag("tools.refund_api.enabled", "bool", True, binding="hot", owner="payments"),
        Flag("loop.max_iterations", "int", 8, min=1, max=50, binding="hot", owner="platform"),
    ]
    flags += [
        Flag(f"extra.f{i:03d}", "bool", i % 2 == 0, owner="platform", description="padding")
        for i in range(extra)
    ]
    return FlagRegistry(flags)


def snapshot(n: int, extra: int = 0) -> dict[str, Any]:
    """The snapshot document published as rev ``n``: every pinned flag says ``n``."""
    values: dict[str, Any] = {
        "model.primary": MODELS[n % len(MODELS)],
        "prompt.version": n,
        "loop.budget": n * 10,
    }
    values.update({f"extra.f{i:03d}": (i + n) % 2 == 0 for i in range(extra)})
    return {"values": values, "tenants": {"acme": {"values": {"loop.max_iterations": 5}}}}


def publish(client: flagmw.FlagClient, n: int, extra: int = 0) -> int:
    """Publish :func:`snapshot` ``(n)``; returns the new rev."""
    return client.publish(snapshot(n, extra), author="tests", message=f"snapshot {n}").rev


def rev_of(values: Mapping[str, Any]) -> int:
    """The rev a set of pinned values was derived from (inverse of :func:`snapshot`);
    raises AssertionError when the values are from different revs."""
    n = values["prompt.version"]
    assert values["loop.budget"] == n * 10, values
    assert values["model.primary"] == MODELS[n % len(MODELS)], values
    return int(n)


def observe(node: str) -> dict[str, Any]:
    """What a node sees: its name, LangGraph's step, the run's boundary count, the
    RunConfig's rev, hash, pinned and hot values."""
    run = current_run()
    assert run is not None
    rc = run.rc
    return {
        "node": node,
        "langgraph_step": get_config()["metadata"].get("langgraph_step"),
        "run_step": run.step,
        "rev": rc.snapshot_rev,
        "hash": rc.config_hash,
        "pinned": {k: rc[k] for k in PINNED},
        "hot": {k: rc[k] for k in HOT},
        "resumed": run.resumed,
    }


class LogState(TypedDict):
    log: Annotated[list[dict[str, Any]], operator.add]


Hook = Callable[[str, dict[str, Any]], Any]


def linear_graph(
    names: tuple[str, ...] = ("a", "b", "c", "d"),
    hooks: Mapping[str, Hook] | None = None,
    *,
    checkpointer: Any = None,
    pause: float = 0.0,
) -> Any:
    """START → names[0] → … → END. Each node appends :func:`observe` to ``log`` and
    then calls ``hooks[name](name, observation)`` when given (which may block, raise,
    call ``interrupt()`` …); ``pause`` sleeps in each node (seconds)."""
    hooks = dict(hooks or {})
    builder = StateGraph(LogState)

    def make(name: str) -> Callable[[LogState], dict[str, Any]]:
        def node(state: LogState) -> dict[str, Any]:
            seen = observe(name)
            if pause:
                time.sleep(pause)
            hook = hooks.get(name)
            if hook is not None:
                out = hook(name, seen)
                if isinstance(out, dict):
                    seen = {**seen, **out}
            return {"log": [seen]}

        node.__name__ = name
        return node

    for name in names:
        builder.add_node(name, make(name))
    builder.add_edge(START, names[0])
    for a, b in itertools.pairwise(names):
        builder.add_edge(a, b)
    builder.add_edge(names[-1], END)
    return builder.compile(checkpointer=checkpointer)
