"""Registries, snapshot documents and contexts the benchmarks measure.

Two workloads:

* **planner** — the peer benchmark's flag (``shared/peer_bench``): one bool flag
  ``agent.new_planner``, default False; rule ``plan == enterprise`` → True; otherwise a
  25 % sticky rollout on the user id → True. In a flagmw snapshot these are two global
  rules (the first matching rule of a layer wins).
* **fleet** — 50 flags of every type and a snapshot with ``tenants`` tenants: each
  tenant a small overlay (three or four values; every 5th a targeting rule; every 7th
  requires a protected flag), global values and rules, a segment, 20 routes and three
  experiments (units user, tenant, thread). Everything is deterministic.
"""

from __future__ import annotations

import random
from types import MappingProxyType
from typing import Any

from flagmw import EvaluationContext, Flag, FlagRegistry

__all__ = [
    "PLANNER_KEY",
    "fleet_contexts",
    "fleet_document",
    "fleet_registry",
    "planner_document",
    "planner_registry",
    "planner_users",
]

#: The peer benchmark's ``agent-new-planner``, as a flagmw key.
PLANNER_KEY = "agent.new_planner"

N_ROUTES = 20


def planner_registry() -> FlagRegistry:
    """The one-flag registry of the peer benchmark."""
    return FlagRegistry(
        [
            Flag(
                PLANNER_KEY,
                "bool",
                False,
                description="New planner (peer benchmark flag)",
                owner="bench",
            )
        ]
    )


def planner_document(salt: str = "rollout-25") -> dict[str, Any]:
    """The peer benchmark's targeting: enterprise → True, else 25 % of users → True."""
    return {
        "rules": [
            {"name": "enterprise", "when": {"plan": "enterprise"}, "set": {PLANNER_KEY: True}},
            {
                "name": "rollout-25",
                "rollout": {"percent": 25, "unit": "user", "salt": salt},
                "set": {PLANNER_KEY: True},
            },
        ]
    }


def planner_users(n: int = 10_000) -> list[tuple[str, str]]:
    """The harness's synthetic users: every 10th enterprise, then pro / free."""
    out = []
    for i in range(n):
        plan = "enterprise" if i % 10 == 0 else "pro" if i % 3 == 0 else "free"
        out.append((f"user-{i}", plan))
    return out


_MODELS = ["gpt-4o", "gpt-4o-mini", "claude-sonnet", "llama-70b"]


def fleet_registry() -> FlagRegistry:
    """50 flags: 21 bool (one hot run kill, one protected), 6 enum, 8 int, 6 float,
    4 string, 5 json (two with a JSON schema)."""
    f: list[Flag] = [
        Flag(PLANNER_KEY, "bool", False, owner="bench", description="New planner"),
        Flag("agent.enabled", "bool", True, binding="hot", run_kill=True, description="Run kill"),
        Flag("compliance.pii_redaction", "bool", True, protected=True, description="PII"),
    ]
    for i in range(14):
        f.append(
            Flag(
                f"tools.tool_{i:02d}.enabled",
                "bool",
                i % 3 != 0,
                binding="hot" if i % 2 == 0 else "pinned",
                description=f"Tool {i} gate",
            )
        )
    for name in ("features.memory", "features.reflection", "features.citations", "features.web"):
        f.append(Flag(name, "bool", False, description=name))
    f += [
        Flag("model.primary", "enum", "gpt-4o", choices=_MODELS, description="Primary model"),
        Flag("model.tier", "enum", "standard", choices=["economy", "standard", "premium"]),
        Flag("prompt.style", "enum", "v2", choices=["v1", "v2", "v3"]),
        Flag("prompt.tone", "enum", "neutral", choices=["neutral", "friendly", "formal"]),
        Flag("retrieval.mode", "enum", "hybrid", choices=["bm25", "dense", "hybrid"]),
        Flag("routing.strategy", "enum", "cost", choices=["cost", "latency", "quality"]),
        Flag("loop.max_iterations", "int", 8, min=1, max=50, binding="hot"),
        Flag("limits.tokens", "int", 32_000, min=1_000, max=200_000),
        Flag("limits.tool_calls", "int", 20, min=0, max=200),
        Flag("retrieval.top_k", "int", 5, min=1, max=50),
        Flag("limits.parallel_tools", "int", 4, min=1, max=16),
        Flag("limits.history_turns", "int", 20, min=1, max=500),
        Flag("limits.retries", "int", 2, min=0, max=10),
        Flag("limits.timeout_ms", "int", 30_000, min=100, max=600_000),
        Flag("model.temperature", "float", 0.3, min=0.0, max=2.0),
        Flag("model.top_p", "float", 1.0, min=0.0, max=1.0),
        Flag("budget.usd_per_run", "float", 0.5, min=0.0, max=100.0),
        Flag("retrieval.min_score", "float", 0.2, min=0.0, max=1.0),
        Flag("safety.toxicity_threshold", "float", 0.8, min=0.0, max=1.0),
        Flag("sampling.trace_ratio", "float", 0.1, min=0.0, max=1.0),
        Flag("prompt.system_suffix", "string", ""),
        Flag("support.escalation_queue", "string", "tier-1"),
        Flag("support.locale", "string", "en-US"),
        Flag("model.endpoint", "string", "default"),
        Flag(
            "model.fallbacks",
            "json",
            ["gpt-4o-mini"],
            schema={"type": "array", "items": {"type": "string"}},
        ),
        Flag("tools.allowlist", "json", [], schema={"type": "array", "items": {"type": "string"}}),
        Flag("limits.per_tool", "json", {"search": 5, "refund": 1}),
        Flag("prompt.variables", "json", {"brand": "acme"}),
        Flag("routing.weights", "json", {"primary": 1.0}),
    ]
    assert len(f) == 50, len(f)
    return FlagRegistry(f)


def fleet_document(tenants: int, *, generation: int = 0) -> dict[str, Any]:
    """The fleet snapshot with ``tenants`` tenants (``t-000000`` …). ``generation``
    changes one global value, so successive publishes differ."""
    tdocs: dict[str, Any] = {}
    for i in range(tenants):
        values: dict[str, Any] = {
            "model.primary": _MODELS[i % 4],
            "limits.tokens": 8_000 + (i % 50) * 1_000,
            "support.escalation_queue": f"queue-{i % 97}",
        }
        if i % 10 == 0:
            values["tools.allowlist"] = ["search", "refund"] if i % 20 else ["search"]
        t: dict[str, Any] = {"values": values}
        if i % 5 == 0:
            t["rules"] = [
                {
                    "name": "enterprise-iterations",
                    "when": {"plan": "enterprise"},
                    "set": {"limits.tool_calls": 50},
                }
            ]
        if i % 7 == 0:
            t["requires"] = ["compliance.pii_redaction"]
        tdocs[f"t-{i:06d}"] = t
    routes = {
        f"route-{j:02d}": {
            "values": {"loop.max_iterations": 2 + j, "prompt.tone": "friendly"},
            "rules": [
                {
                    "name": "eu-locale",
                    "when": {"region": "eu"},
                    "set": {"support.locale": "en-GB"},
                }
            ],
        }
        for j in range(N_ROUTES)
    }
    return {
        "environments": {
            "production": {"values": {"model.temperature": 0.2, "sampling.trace_ratio": 0.05}},
            "staging": {"values": {"model.primary": "gpt-4o-mini"}},
        },
        "values": {
            "model.fallbacks": ["gpt-4o-mini", "llama-70b"],
            "features.citations": True,
            "retrieval.top_k": 8,
            "budget.usd_per_run": 0.75 + generation / 1000,
        },
        "segments": {"beta": {"user_id": {"in": [f"user-{i}" for i in range(0, 500, 7)]}}},
        "rules": [
            {"name": "enterprise", "when": {"plan": "enterprise"}, "set": {PLANNER_KEY: True}},
            {
                "name": "rollout-25",
                "rollout": {"percent": 25, "unit": "user"},
                "set": {PLANNER_KEY: True},
            },
            {
                "name": "enterprise-v3",
                "when": {"plan": {"in": ["enterprise"]}},
                "set": {"prompt.style": "v3", "model.tier": "premium"},
            },
            {"name": "beta-memory", "when": {"segment": "beta"}, "set": {"features.memory": True}},
        ],
        "tenants": tdocs,
        "routes": routes,
        "experiments": {
            "style-v3-rollout": {
                "flag": "prompt.style",
                "unit": "user",
                "when": {"plan": {"in": ["free", "pro"]}},
                "variants": {"control": "v2", "treatment": "v3"},
                "weights": {"control": 75, "treatment": 25},
            },
            "routing-by-tenant": {
                "flag": "routing.strategy",
                "unit": "tenant",
                "variants": {"a": "cost", "b": "latency", "c": "quality"},
                "weights": {"a": 50, "b": 30, "c": 20},
            },
            "top-k-by-thread": {
                "flag": "retrieval.top_k",
                "unit": "thread",
                "variants": {"k8": 8, "k12": 12},
                "weights": {"k8": 50, "k12": 50},
            },
        },
    }


def fleet_contexts(tenants: int, count: int, *, seed: int = 7) -> list[EvaluationContext]:
    """``count`` distinct-ish contexts whose tenants are drawn uniformly from all
    ``tenants`` (so lookups spread over the whole table), with a route, a thread, a
    plan and a free attribute."""
    rnd = random.Random(seed)
    eu = MappingProxyType({"region": "eu"})
    us = MappingProxyType({"region": "us"})
    out = []
    for i in range(count):
        plan = "enterprise" if i % 10 == 0 else "pro" if i % 3 == 0 else "free"
        out.append(
            EvaluationContext(
                tenant_id=f"t-{rnd.randrange(tenants):06d}",
                user_id=f"user-{i}",
                route=f"route-{i % N_ROUTES:02d}",
                thread_id=f"thread-{i}",
                run_id=f"run-{i}",
                plan=plan,
                attributes=eu if i % 2 else us,
            )
        )
    return out
