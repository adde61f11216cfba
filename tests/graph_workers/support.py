"""Shared pieces of the flagmw.wrap tests and of the worker processes they start.

Imported as ``graph_workers.support`` by tests and as ``support`` by the scripts in this
folder (run as ``python tests/graph_workers/<script>.py``).

The flags themselves are in :mod:`flags` (no LangGraph import).
"""

from __future__ import annotations

import itertools
import operator
import time
from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypedDict

from langgraph.config import get_config
from langgraph.graph import END, START, StateGraph

from flagmw.langgraph.run import current_run

try:  # imported as graph_workers.support by the tests, as support by the scripts
    from .flags import HOT, MODELS, PINNED, make_registry, publish, rev_of, snapshot
except ImportError:
    from flags import HOT, MODELS, PINNED, make_registry, publish, rev_of, snapshot  # type: ignore[no-redef]

__all__ = [
    "HOT",
    "MODELS",
    "PINNED",
    "LogState",
    "linear_graph",
    "make_registry",
    "observe",
    "publish",
    "rev_of",
    "snapshot",
]


def observe(node: str) -> dict[str, Any]:
    """What a node sees: its name, LangGraph's step, the run's boundary count, the
    RunConfig's rev, hash (with the hot values of now), the hash of the config pinned at
    run start, pinned and hot values."""
    run = current_run()
    assert run is not None
    rc = run.rc
    return {
        "node": node,
        "langgraph_step": get_config()["metadata"].get("langgraph_step"),
        "run_step": run.step,
        "rev": rc.snapshot_rev,
        "hash": rc.config_hash,
        "pinned_hash": run.pinned.config_hash,
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
