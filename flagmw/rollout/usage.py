"""Model calls, token usage and tool errors of a run, from LangChain callbacks.

:class:`UsageCounter` is a LangChain callback handler. :func:`counting` makes one
current for a stretch of execution through a ``ContextVar`` registered with LangChain's
``register_configure_hook``, so every chat model and tool call made in that stretch —
in any node, with any callbacks the user passes — reports to it without touching the
run's config. Token counts come from the messages' ``usage_metadata`` (LangChain's
standard ``input_tokens`` / ``output_tokens``); the model route from
``response_metadata["model_name"]`` (or ``"model"``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.outputs import LLMResult

__all__ = ["UsageCounter", "counting"]

_counter_var: ContextVar[UsageCounter | None] = ContextVar("flagmw_usage", default=None)
_registered = False
_reg_lock = threading.Lock()


def _register() -> None:
    global _registered
    with _reg_lock:
        if not _registered:
            from langchain_core.tracers.context import register_configure_hook

            register_configure_hook(_counter_var, inheritable=True)
            _registered = True


class UsageCounter(BaseCallbackHandler):
    """Counts one run's model calls, tokens per model route and tool errors.

    Attributes:
        model_calls: chat model / LLM calls that ended (with or without error).
        model_errors: calls that raised.
        tokens: model route → ``[input_tokens, output_tokens]``.
        tool_errors: tool calls that raised.
    """

    run_inline = True  # counted in the caller's thread: no executor hop

    def __init__(self) -> None:
        self.model_calls = 0
        self.model_errors = 0
        self.tool_errors = 0
        self.tokens: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            self.model_calls += 1
            for gens in response.generations:
                for gen in gens:
                    msg = getattr(gen, "message", None)
                    usage = getattr(msg, "usage_metadata", None)
                    if not usage:
                        continue
                    meta = getattr(msg, "response_metadata", None) or {}
                    route = str(meta.get("model_name") or meta.get("model") or "")
                    slot = self.tokens.setdefault(route, [0, 0])
                    slot[0] += int(usage.get("input_tokens") or 0)
                    slot[1] += int(usage.get("output_tokens") or 0)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            self.model_calls += 1
            self.model_errors += 1

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            self.tool_errors += 1

    def totals(self) -> tuple[int, int]:
        """``(input_tokens, output_tokens)`` over every route."""
        return (
            sum(v[0] for v in self.tokens.values()),
            sum(v[1] for v in self.tokens.values()),
        )


@contextlib.contextmanager
def counting(counter: UsageCounter) -> Iterator[None]:
    """Make ``counter`` receive the callbacks of every LangChain call in the block."""
    _register()
    token = _counter_var.set(counter)
    try:
        yield
    finally:
        _counter_var.reset(token)
