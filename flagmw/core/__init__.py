"""The pure core: evaluation context, registry, snapshot, conditions, bucketing,
overrides, the resolution order (layers), resolve and explain, RunConfig.

Nothing here imports LangGraph, OpenTelemetry or a store (``tests/test_layout.py``
enforces it): every function is a pure function over frozen data, so the same inputs
always give the same RunConfig.
"""
