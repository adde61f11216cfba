"""Flag keys people already have (issue 10 §1): snake_case and kebab-case keys, ``FF_``
variables that name exactly one flag, registries from a ``FeatureFlag`` enum, and the
keyword-context convenience checks — over the one evaluation path."""

from __future__ import annotations

from enum import Enum, StrEnum

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flagmw import EvaluationContext, Flag, FlagClient, FlagRegistry, MemoryStore, ValidationError
from flagmw.client.env import read_env_values
from flagmw.core.flag_spec import KEY_PATTERN, MAX_KEY_LENGTH
from flagmw.core.registry import env_var_name

keys = st.from_regex(KEY_PATTERN, fullmatch=True).filter(lambda k: len(k) <= MAX_KEY_LENGTH)


@given(st.lists(keys, min_size=1, max_size=8, unique=True))
def test_within_a_registry_every_ff_variable_names_exactly_one_flag(ks: list[str]) -> None:
    flags = [Flag(k, "bool", False) for k in ks]
    codes: set[str] = set()
    names: list[str] = []
    try:
        registry = FlagRegistry(flags)
    except ValidationError as exc:
        codes = {p.code for p in exc.errors}
    else:
        names = [env_var_name(f.key) for f in registry]
    # refused only for a namespace clash or a shared variable; else names are distinct
    assert codes <= {"key_prefix", "invalid_key"}
    assert len(set(names)) == len(names)


def test_ff_variables_reach_snake_and_kebab_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = FlagRegistry(
        [
            Flag("use_v3_style", "bool", False),
            Flag("agent-new-planner", "bool", False),
            Flag("agent.max-steps", "int", 8),
        ]
    )
    monkeypatch.setenv("FF_USE_V3_STYLE", "true")
    monkeypatch.setenv("FF_AGENT_NEW_PLANNER", "true")
    monkeypatch.setenv("FF_AGENT_MAX_STEPS", "3")
    assert read_env_values(registry) == {
        "use_v3_style": True,
        "agent-new-planner": True,
        "agent.max-steps": 3,
    }


class FeatureFlag(StrEnum):
    USE_V3_STYLE = "use_v3_style"
    NEW_PLANNER = "agent-new-planner"
    MAX_STEPS = "agent-max-steps"
    MODEL = "agent-model"


def test_a_registry_from_a_feature_flag_enum_and_members_as_keys() -> None:
    registry = FlagRegistry.from_enum(
        FeatureFlag, defaults={FeatureFlag.MAX_STEPS: 8, FeatureFlag.MODEL: "gpt-4o"}
    )
    assert {f.key: f.type.value for f in registry} == {
        "use_v3_style": "bool",
        "agent-new-planner": "bool",
        "agent-max-steps": "int",
        "agent-model": "string",
    }
    client = FlagClient(registry, MemoryStore())
    client.publish(
        {"tenants": {"acme": {"values": {"use_v3_style": True}}}}, author="a", message="m"
    )
    assert client.is_enabled(FeatureFlag.USE_V3_STYLE) is False
    assert client.is_enabled_for_org(FeatureFlag.USE_V3_STYLE, "acme") is True
    assert client.is_enabled(FeatureFlag.USE_V3_STYLE, tenant_id="acme", plan="pro") is True
    assert client.is_enabled(FeatureFlag.USE_V3_STYLE, EvaluationContext(tenant_id="acme"))
    assert client.value(FeatureFlag.MAX_STEPS) == 8
    client.kill(FeatureFlag.NEW_PLANNER, reason="r", actor="a")
    assert client.resolve()["agent-new-planner"] is False
    with pytest.raises(TypeError, match="not both"):
        client.is_enabled("use_v3_style", EvaluationContext(), user_id="u")

    class Legacy(str, Enum):  # noqa: UP042 (the pre-3.11 form applications still use)
        A = "feature-a"

    assert FlagRegistry.from_enum(Legacy).keys() == ["feature-a"]

    class Bad(Enum):
        A = 1

    with pytest.raises(TypeError, match="must be a str"):
        FlagRegistry.from_enum(Bad)
    with pytest.raises(TypeError, match="lacks"):
        FlagRegistry.from_enum(FeatureFlag, defaults={"nope": 1})
