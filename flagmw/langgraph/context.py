"""The evaluation context of a run, built from its LangGraph ``RunnableConfig``, and
the effective config of an invocation (the ambient config merged with the graph's and
the caller's, as LangGraph merges them)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import merge_configs
from langgraph.config import get_config

from flagmw.core.context import WELL_KNOWN_ATTRIBUTES, EvaluationContext, valid_text

log = logging.getLogger("flagmw")

#: Words that mark a configurable key as a secret (never a context attribute): a key is
#: dropped when one of its words (split on ``_``, ``-``, ``.``, spaces and camelCase)
#: is one of these, or when it is one of them as a whole (``apikey``, ``authToken``…).
#: Whole words, not substrings: ``max_tokens``, ``author`` and ``keyboard`` stay. The
#: list follows the words LangGraph keeps out of tracing metadata
#: (``langgraph/_internal/_config.py`` ``_get_tracing_metadata_defaults``: key, token,
#: secret, password, auth) plus their usual spellings.
SECRET_WORDS = frozenset(
    {
        "key",
        "keys",
        "apikey",
        "token",
        "secret",
        "secrets",
        "password",
        "passwords",
        "passwd",
        "pwd",
        "passphrase",
        "auth",
        "authorization",
        "credential",
        "credentials",
        "cookie",
        "bearer",
        "privatekey",
        "accesstoken",
        "authtoken",
        "secretkey",
        "clientsecret",
    }
)
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_NOT_ATTRIBUTES = frozenset({"thread_id", "environment", "thread_ts"})

#: ``(config, input) -> EvaluationContext``: how a run's evaluation context is built.
ContextBuilder = Callable[[RunnableConfig, Any], EvaluationContext]


def is_secret_key(key: str) -> bool:
    """True when the configurable key ``key`` names a secret (see :data:`SECRET_WORDS`):
    ``api_key``, ``OPENAI_API_KEY``, ``apiKey``, ``x-auth-token``, ``authorization`` are;
    ``max_tokens``, ``author``, ``keyboard``, ``monkey`` are not."""
    if key.lower() in SECRET_WORDS:
        return True
    return any(word.lower() in SECRET_WORDS for word in _WORD.findall(key))


def context_from_config(
    config: RunnableConfig, input: Any = None, *, route: str | None = None
) -> EvaluationContext:
    """The default evaluation context of a run, from its ``RunnableConfig``.

    Reads ``config["configurable"]``: ``tenant_id``, ``user_id``, ``thread_id``,
    ``plan`` and ``route`` (defaulting to ``route``, the graph's name), ``run_id``
    (or else ``config["run_id"]``), each as its text (``str(value)``). Ids are untrusted
    and never crash the run: text that is not valid Unicode (a lone surrogate, e.g. an
    undecodable header byte) is used as its visible escape (``"\\ud800"``, see
    :class:`~flagmw.core.context.EvaluationContext`), a value whose text cannot even be
    taken is left out (the run has no such id); either way a warning is logged on the
    ``flagmw`` logger, and the id the run used is the one pinned and traced. Every other
    scalar entry (str, int, float, bool)
    becomes a free attribute, except LangGraph's own keys (``__*``,
    ``checkpoint_*``), ``environment`` (the client decides the environment) and keys
    that name a secret (:func:`is_secret_key`: one of their words is ``key``,
    ``token``, ``secret``, ``password``, ``auth``, … — whole words, so ``max_tokens``
    or ``author`` stay).

    Args:
        config: the invocation's config.
        input: the graph input (unused by the default; part of the builder signature).
        route: the route to use when the config names none.
    """
    conf = config.get("configurable") or {}
    fields: dict[str, str] = {}
    attributes: dict[str, Any] = {}
    for key, value in conf.items():
        if not isinstance(key, str) or value is None:
            continue
        if key.startswith("__") or key.startswith("checkpoint_"):
            continue
        if key in WELL_KNOWN_ATTRIBUTES:
            if key == "environment":
                continue
            if type(value) is str and value.isascii():  # _id_text's answer, without the call
                fields[key] = value
            else:
                text = _id_text(key, value)
                if text is not None:
                    fields[key] = text
            continue
        if key in _NOT_ATTRIBUTES or is_secret_key(key):
            continue
        if isinstance(value, str | int | float | bool):
            attributes[key] = value
    if "run_id" not in fields and config.get("run_id") is not None:
        text = _id_text("run_id", config.get("run_id"))
        if text is not None:
            fields["run_id"] = text
    if "route" not in fields and route is not None:
        fields["route"] = route
    if not attributes:
        # the id fields are valid text already (_id_text): no normalisation to repeat
        return EvaluationContext._of_valid_ids(fields)
    # only free attributes can need valid()
    return EvaluationContext(**fields, attributes=attributes).valid().frozen()


def _id_text(key: str, value: Any) -> str | None:
    """The text of the id ``value`` for the context: ``str(value)`` made valid Unicode;
    None (with a warning) when ``str`` itself fails."""
    try:
        text = value if type(value) is str else str(value)
    except Exception as exc:  # an object whose __str__ raises: no id, never a crash
        log.warning(
            "flagmw: configurable %s has no usable text (%s); the run has no %s",
            key,
            type(exc).__name__,
            key,
        )
        return None
    if not isinstance(text, str):  # pragma: no cover - a broken __str__
        return None
    clean = valid_text(text)
    if clean is not text:
        log.warning(
            "flagmw: configurable %s %r is not valid Unicode (a lone surrogate); the run "
            "uses its escaped text",
            key,
            text,
        )
    return clean


# the configurable keys that address a checkpoint lineage of its own
_COORDINATE_KEYS = ("thread_id", "checkpoint_ns", "checkpoint_id", "checkpoint_map")


def effective_config(*configs: RunnableConfig | None) -> RunnableConfig:
    """The config an invocation runs with: the ambient config (inside a node or tool of
    another graph, ``langgraph.config.get_config()``) merged with ``configs`` in order
    (``langchain_core``'s public ``merge_configs``: configurable shallow-merged, later
    wins). As LangGraph does (``Pregel.stream``), an explicit config that addresses its
    own checkpoint lineage (a ``thread_id``, ``checkpoint_ns``, ``checkpoint_id`` or
    ``checkpoint_map``) does not inherit the ambient configurable.
    """
    return _merged(_ambient(), configs)


def _ambient() -> RunnableConfig | None:
    """The config of the runnable this code runs in, None outside one."""
    try:
        return get_config()
    except RuntimeError:  # outside a runnable
        return None


def _merged(
    ambient: RunnableConfig | None, configs: tuple[RunnableConfig | None, ...]
) -> RunnableConfig:
    if ambient and ambient.get("configurable"):
        for config in configs:
            conf = (config or {}).get("configurable") or {}
            if any(conf.get(k) not in (None, "", {}) for k in _COORDINATE_KEYS):
                ambient = {**ambient, "configurable": {}}
                break
    return merge_configs(ambient, *configs)


def read_config(
    graph_config: RunnableConfig | None, config: RunnableConfig | None
) -> RunnableConfig:
    """What the wrapper reads of an invocation's config (``configurable`` and
    ``run_id``) for the default context builder: :func:`effective_config` when there is
    something to merge — an ambient config (inside a runnable) or a graph default
    config (``with_config``) — else ``config`` itself, without LangChain's merge and
    its defaults (``tags``, ``metadata``, ``recursion_limit``; nothing the default
    builder or the wrapper reads). Never changed by the caller."""
    ambient = _ambient()
    if ambient is not None or graph_config:
        return _merged(ambient, (graph_config, config))
    if not config:
        return {"configurable": {}}
    if isinstance(config.get("configurable"), Mapping):
        return config
    return {**config, "configurable": {}}
