"""Learning whether an invocation of a wrapped graph ended on an interrupt where the
wrapper's checkpointer cannot see it (no checkpointer; breakpoints)."""

from __future__ import annotations

from langchain_core.callbacks import BaseCallbackManager, CallbackManager, Callbacks
from langgraph.callbacks import GraphCallbackHandler, GraphInterruptEvent, GraphResumeEvent


class _InterruptWatch(GraphCallbackHandler):
    """Learns whether an invocation ended on an interrupt.

    LangGraph reports ``on_interrupt`` for the root graph's ``interrupt()`` calls and
    breakpoints (``interrupt_before`` / ``interrupt_after``), whatever the stream mode
    (``emit_graph_lifecycle_events`` in ``Pregel.stream``), where the
    ``__interrupt__`` marker only appears in some modes. It ignores every other callback
    so it costs nothing per node.
    """

    run_inline = True  # async graphs: called in the loop, not in an executor

    def __init__(self) -> None:
        self.interrupted = False

    @property
    def ignore_llm(self) -> bool:
        return True

    @property
    def ignore_retry(self) -> bool:
        return True

    @property
    def ignore_chain(self) -> bool:
        return True

    @property
    def ignore_agent(self) -> bool:
        return True

    @property
    def ignore_retriever(self) -> bool:
        return True

    @property
    def ignore_chat_model(self) -> bool:
        return True

    @property
    def ignore_custom_event(self) -> bool:
        return True

    def on_interrupt(self, event: GraphInterruptEvent) -> None:
        if not event.checkpoint_ns:
            self.interrupted = True

    def on_resume(self, event: GraphResumeEvent) -> None:
        return None


def _add_callback(callbacks: Callbacks, handler: _InterruptWatch) -> Callbacks:
    """``callbacks`` plus ``handler`` as a non-inheritable handler: LangGraph builds the
    graph's lifecycle callback manager from every handler of ``config["callbacks"]``,
    while child runs (nodes, tools, models) only inherit the inheritable ones — so the
    watch costs nothing per node."""
    if isinstance(callbacks, BaseCallbackManager):
        manager = callbacks.copy()
    else:
        # a list of callbacks is inheritable as a whole (CallbackManager.configure)
        listed = list(callbacks or ())
        manager = CallbackManager(handlers=listed, inheritable_handlers=listed)
    manager.add_handler(handler, inherit=False)
    return manager
