"""pytest-bdd set-up of the OpenFeature conformance suites: the suites' tags are not
pytest markers (``--strict-markers`` would refuse them), and the scenarios that cannot
apply to flagmw are skipped with the reason docs/openfeature.md lists."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

#: the Examples tags of the suites, applied by pytest-bdd as marks
EXAMPLE_TAGS = ("booleans", "strings", "numbers", "objects")

#: (feature file, scenario, flag key or example id part or None) → why it cannot apply.
#: docs/openfeature.md lists the same, with more words.
NOT_APPLICABLE: dict[tuple[str, str, str | None], str] = {
    ("evaluation.feature", "Resolves based on context", None): (
        "the scenario evaluates a flag 'context-aware' that test-flags.json does not define"
    ),
    ("evaluation_v2.feature", "Provider not ready error", None): (
        "a FlagmwProvider is never NOT_READY: it wraps a FlagClient that read its store "
        "(or refused to start) before the provider existed; initialize() does no waiting"
    ),
    ("evaluation_v2.feature", "Provider in fatal state error", None): (
        "flagmw has no unrecoverable provider state (an unreachable store is STALE, a "
        "head rev that does not fit the registry is ERROR; both recover)"
    ),
    ("evaluation_v2.feature", "Provider status accessibility", "not ready"): (
        "a FlagmwProvider is never NOT_READY (see 'Provider not ready error')"
    ),
    ("evaluation_v2.feature", "Provider status accessibility", "fatal"): (
        "flagmw has no unrecoverable provider state (see 'Provider in fatal state error')"
    ),
    ("evaluation_v2.feature", "CACHED reason", None): (
        "flagmw reports the winning layer's reason; every live answer comes from the "
        "client's compiled snapshot, so CACHED would say nothing about the answer"
    ),
    ("evaluation_v2.feature", "DISABLED reason", "string-disabled-flag"): (
        "a disabled non-bool flag: flagd answers the caller's default; flagmw has no "
        "'answer the caller's default' state (a kill forces false on a bool flag, never "
        "the caller's fallback: fail safe)"
    ),
    (
        "evaluation_v2.feature",
        "DISABLED reason",
        "integer-disabled-flag",
    ): "as string-disabled-flag",
    ("evaluation_v2.feature", "DISABLED reason", "float-disabled-flag"): "as string-disabled-flag",
    ("evaluation_v2.feature", "DISABLED reason", "object-disabled-flag"): "as string-disabled-flag",
    ("evaluation_v2.feature", "Evaluation context immutability", None): (
        "'the evaluation details should be immutable': openfeature-sdk 0.10's "
        "FlagEvaluationDetails is a mutable dataclass (the SDK's object, not the provider's)"
    ),
    ("metadata.feature", "Returns no metadata", None): (
        "every flagmw answer carries flag_metadata (version = snapshot rev, layer, "
        "contextId …) for OpenFeature telemetry, so it is never empty"
    ),
}


def pytest_configure(config: pytest.Config) -> None:
    for tag in EXAMPLE_TAGS:
        config.addinivalue_line("markers", f"{tag}: OpenFeature conformance Examples tag")


def pytest_bdd_apply_tag(tag: str, function: Callable[..., Any]) -> bool:
    return True  # the suites' tags (@spec-1.4.7 …) are documentation here, not markers


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        doc = getattr(getattr(item, "function", None), "__doc__", None) or ""
        feature, _, scenario = doc.partition(": ")
        feature = feature.rsplit("/", 1)[-1]
        callspec = getattr(item, "callspec", None)
        example = callspec.params.get("_pytest_bdd_example", {}) if callspec else {}
        values = set(example.values()) if isinstance(example, dict) else set()
        for (f, s, part), reason in NOT_APPLICABLE.items():
            if f == feature and s == scenario and (part is None or part in values):
                item.add_marker(pytest.mark.skip(reason=f"not applicable to flagmw: {reason}"))
