"""The flags of the flagmw.wrap tests: a registry whose pinned flags every snapshot derives
from its own rev (so a recorded value tells which rev it came from) and hot flags
(``agent.enabled`` is a run kill).

Imports only flagmw's core (no LangGraph), so worker processes that just operate the
store start fast.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flagmw
from flagmw import Flag, FlagRegistry

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
