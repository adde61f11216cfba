"""The evaluation context of a run, built from its LangGraph ``RunnableConfig``."""

from __future__ import annotations

import logging
from collections.abc import (
    Callable,
)
from typing import TYPE_CHECKING, Any

from langchain_core.runnables import RunnableConfig

# the merge LangGraph itself applies to an invocation's config (ambient config, the
# reset of an inherited checkpoint coordinate); private in langgraph 1.2
from flagmw.core.context import WELL_KNOWN_ATTRIBUTES, EvaluationContext

if TYPE_CHECKING:  # pragma: no cover
    pass


log = logging.getLogger("flagmw")


# configurable keys never used as context attributes: LangGraph's own, and anything
# that looks like a secret (the same words langgraph drops from tracing metadata,
# langgraph/_internal/_config.py _get_tracing_metadata_defaults)
_SECRET_WORDS = ("key", "token", "secret", "password", "auth")
_NOT_ATTRIBUTES = frozenset({"thread_id", "environment", "thread_ts"})

#: ``(config, input) -> EvaluationContext``: how a run's evaluation context is built.
ContextBuilder = Callable[[RunnableConfig, Any], EvaluationContext]


def context_from_config(
    config: RunnableConfig, input: Any = None, *, route: str | None = None
) -> EvaluationContext:
    """The default evaluation context of a run, from its ``RunnableConfig``.

    Reads ``config["configurable"]``: ``tenant_id``, ``user_id``, ``thread_id``,
    ``plan`` and ``route`` (defaulting to ``route``, the graph's name), ``run_id``
    (or else ``config["run_id"]``); every other scalar entry (str, int, float, bool)
    becomes a free attribute, except LangGraph's own keys (``__*``,
    ``checkpoint_*``), ``environment`` (the client decides the environment) and keys
    that look like secrets (containing ``key``, ``token``, ``secret``, ``password`` or
    ``auth``, the words LangGraph keeps out of tracing metadata).

    Args:
        config: the invocation's config.
        input: the graph input (unused by the default; part of the builder signature).
        route: the route to use when the config names none.
    """
    conf = config.get("configurable") or {}
    fields: dict[str, str] = {}
    attributes: dict[str, Any] = {}
    for key, value in conf.items():
        if value is None or key.startswith("__") or key.startswith("checkpoint_"):
            continue
        if key in WELL_KNOWN_ATTRIBUTES:
            if key != "environment":
                fields[key] = str(value)
            continue
        if key in _NOT_ATTRIBUTES:
            continue
        low = key.lower()
        if any(word in low for word in _SECRET_WORDS):
            continue
        if isinstance(value, str | int | float | bool):
            attributes[key] = value
    if "run_id" not in fields and config.get("run_id") is not None:
        fields["run_id"] = str(config.get("run_id"))
    if "route" not in fields and route is not None:
        fields["route"] = route
    return EvaluationContext(**fields, attributes=attributes).frozen()
