"""The LangGraph integration: :func:`wrap` (one run lifecycle for sync and async), the
pin in the checkpoint, the checkpointer delegate, step-boundary control, the evaluation
context from ``RunnableConfig``, gated tools, routed models and ``current()``.

Importing this package is cheap; its modules import LangGraph (``flagmw[langgraph]``)
when they are imported. The public names are re-exported by :mod:`flagmw`.
"""
