"""The flag registry: typed flags, strict values, key rules, YAML and Python equivalence."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pydantic
import pytest
from conftest import FLAGS_YAML, flags_data

from flagmw import (
    Binding,
    Flag,
    FlagmwError,
    FlagRegistry,
    FlagType,
    UnknownFlagError,
    ValidationError,
)
from flagmw.core.canonical import content_hash
from flagmw.core.flag_spec import KEY_PATTERN
from flagmw.core.registry import env_var_name


def design_in_python() -> FlagRegistry:
    """DESIGN §9's registry written in Python."""
    return FlagRegistry(
        [
            Flag(
                "tools.refund_api.enabled",
                "bool",
                True,
                binding="hot",
                owner="payments",
                description="Refund tool gate",
            ),
            Flag(
                "agent.enabled",
                FlagType.BOOL,
                True,
                binding=Binding.HOT,
                run_kill=True,
                owner="platform",
                description="Run kill (drains runs)",
            ),
            Flag(
                "model.primary",
                "enum",
                "gpt-4o",
                choices=["gpt-4o", "gpt-4o-mini"],
                owner="platform",
                description="Primary model route",
            ),
            Flag(
                "model.fallbacks",
                "json",
                [],
                schema={"type": "array", "items": {"type": "string"}},
                owner="platform",
                description="Fallback ladder",
            ),
            Flag(
                "loop.max_iterations",
                "int",
                8,
                min=1,
                max=50,
                binding="hot",
                owner="platform",
                description="Agent loop cap",
            ),
            Flag(
                "compliance.pii_redaction",
                "bool",
                True,
                protected=True,
                owner="security",
                description="Redact PII in tool output",
            ),
            Flag(
                "prompt.style",
                "enum",
                "v2",
                choices=("v2", "v3"),
                owner="ux",
                expires="2099-03-01",
                description="Style prompt version",
            ),
        ]
    )


def test_yaml_and_python_give_the_same_registry(registry: FlagRegistry, flags_file: Path) -> None:
    python = design_in_python()
    from_file = FlagRegistry.from_yaml(flags_file)
    assert python.fingerprint == registry.fingerprint == from_file.fingerprint
    assert python.to_dict() == registry.to_dict()
    assert list(python) == list(registry)  # Flag equality: same definition
    assert python.keys() == registry.keys()
    assert from_file.source == str(flags_file)


def test_registry_surface(registry: FlagRegistry) -> None:
    assert len(registry) == 7
    assert registry.keys()[0] == "tools.refund_api.enabled"  # definition order
    assert "model.primary" in registry
    assert "model.secondary" not in registry
    assert registry.get("model.secondary") is None
    assert registry.hot_keys == {"tools.refund_api.enabled", "agent.enabled", "loop.max_iterations"}
    assert registry.run_kill_keys == {"agent.enabled"}
    flag = registry["model.primary"]
    assert (flag.type, flag.default, flag.choices) == (
        FlagType.ENUM,
        "gpt-4o",
        ("gpt-4o", "gpt-4o-mini"),
    )
    assert flag.binding is Binding.PINNED
    assert not flag.hot
    assert registry["loop.max_iterations"].hot
    assert registry["compliance.pii_redaction"].protected
    assert registry["prompt.style"].expires == dt.date(2099, 3, 1)
    assert "FlagRegistry(7 flags" in repr(registry)
    assert repr(flag) == "Flag('model.primary', 'enum', default='gpt-4o')"


def test_unknown_key_suggests_close_keys(registry: FlagRegistry) -> None:
    with pytest.raises(UnknownFlagError) as info:
        registry["model.primry"]
    err = info.value
    assert isinstance(err, KeyError)
    assert isinstance(err, FlagmwError)
    assert err.key == "model.primry"
    assert err.suggestions[0] == "model.primary"
    assert str(err) == "unknown flag 'model.primry'; did you mean 'model.primary'?"
    with pytest.raises(UnknownFlagError, match="define it in the registry"):
        registry["zzz.qqq"]


def test_flags_are_immutable(registry: FlagRegistry) -> None:
    flag = registry["loop.max_iterations"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        flag.default = 9  # type: ignore[misc]
    assert hash(flag) == hash("loop.max_iterations")


def test_fingerprint(registry: FlagRegistry) -> None:
    assert registry.fingerprint == content_hash(registry.to_dict())
    reordered = FlagRegistry(list(reversed(list(registry))))
    assert reordered.fingerprint == registry.fingerprint, "definition order does not matter"
    data = flags_data()
    data["flags"]["loop.max_iterations"]["default"] = 9
    assert FlagRegistry.from_dict(data).fingerprint != registry.fingerprint
    data = flags_data()
    data["flags"]["loop.max_iterations"]["description"] = "changed"
    assert FlagRegistry.from_dict(data).fingerprint != registry.fingerprint
    rebuilt = FlagRegistry.from_dict(registry.to_dict())
    assert rebuilt.fingerprint == registry.fingerprint


def test_fingerprint_is_stable_across_processes(tmp_path: Path, registry: FlagRegistry) -> None:
    path = tmp_path / "flags.yaml"
    path.write_text(FLAGS_YAML, encoding="utf-8")
    code = (
        "import sys; from flagmw import FlagRegistry; "
        "print(FlagRegistry.from_yaml(sys.argv[1]).fingerprint)"
    )
    for seed in ("0", "12345"):
        out = subprocess.run(
            [sys.executable, "-c", code, str(path)],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
        ).stdout.strip()
        assert out == registry.fingerprint


def test_from_dict_accepts_the_flags_mapping_itself() -> None:
    spec = {"a.b": {"type": "bool", "default": False}}
    assert FlagRegistry.from_dict(spec).keys() == ["a.b"]
    assert FlagRegistry.from_dict({"flags": spec, "values": {"x": 1}}).keys() == ["a.b"]


@pytest.mark.parametrize(
    "key",
    [
        "a.b",
        "tools.refund_api.enabled",
        "a1.b_2.c3",
        "x.1",
        "a" * 60 + "." + "b" * 67,
        "model",  # one segment (snake_case flags of FeatureFlag enums)
        "use_v3_style",
        "agent-new-planner",  # kebab-case (flagd, LaunchDarkly)
        "tools.refund-api",
        "checkout.new-flow.enabled",
    ],
)
def test_valid_keys(key: str) -> None:
    assert KEY_PATTERN.match(key)
    assert Flag(key, "bool", False).key == key


@pytest.mark.parametrize(
    "key",
    [
        "Tools.Refund",
        "USE_V3_STYLE",
        "-agent",
        "tools..refund",
        "tools.refund.",
        ".tools.refund",
        "1tools.refund",
        "_tools.refund",
        "tools refund.x",
        "tools.réfund",
        "a" * 61 + "." + "b" * 67,
        "",
    ],
)
def test_invalid_keys(key: str) -> None:
    with pytest.raises(ValidationError) as info:
        Flag(key, "bool", False)
    (problem,) = info.value.errors
    assert problem.code == "invalid_key"
    assert repr(key) in problem.message
    assert problem.hint.startswith("e.g. ")


def test_invalid_key_hint_is_a_valid_key() -> None:
    with pytest.raises(ValidationError) as info:
        Flag("Tools.Refund-API", "bool", False)
    hint = info.value.errors[0].hint
    assert hint == "e.g. 'tools.refund-api'"


def test_duplicate_and_nested_keys_in_python() -> None:
    with pytest.raises(ValidationError) as info:
        FlagRegistry([Flag("a.b", "bool", False), Flag("a.b", "bool", True)])
    assert [p.code for p in info.value.errors] == ["duplicate_key"]
    with pytest.raises(ValidationError) as info:
        FlagRegistry([Flag("a.b", "bool", False), Flag("a.b.c", "bool", True)])
    (problem,) = info.value.errors
    assert problem.code == "key_prefix"
    assert "'a.b.c' is nested under flag 'a.b'" in problem.message
    # a shared prefix that is not a namespace is fine
    assert len(FlagRegistry([Flag("a.b", "bool", False), Flag("a.bc", "bool", True)])) == 2


# -- strict values --------------------------------------------------------------------------

BOOL = Flag("t.bool", "bool", False)
INT = Flag("t.int", "int", 5, min=0, max=10)
FLOAT = Flag("t.float", "float", 0.5, min=-1, max=1.5)
ENUM = Flag("t.enum", "enum", "a", choices=["a", "b", "c"])
STRING = Flag("t.string", "string", "")
JSON = Flag("t.json", "json", {})
SCHEMA = Flag(
    "t.schema",
    "json",
    [],
    schema={"type": "array", "items": {"type": "string"}, "maxItems": 2},
)


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        (BOOL, True, True),
        (BOOL, False, False),
        (INT, 0, 0),
        (INT, 10, 10),
        (FLOAT, 1, 1.0),
        (FLOAT, -1.0, -1.0),
        (FLOAT, 1.5, 1.5),
        (ENUM, "c", "c"),
        (STRING, "", ""),
        (STRING, "ünïcode ✓", "ünïcode ✓"),
        (JSON, {"a": [1, 2.5, None, True, "x"]}, {"a": [1, 2.5, None, True, "x"]}),
        (JSON, "just a string", "just a string"),
        (JSON, None, None),
        (SCHEMA, ["a", "b"], ["a", "b"]),
    ],
)
def test_values_that_fit(flag: Flag, value: Any, expected: Any) -> None:
    got = flag.coerce(value)
    assert got == expected
    assert type(got) is type(expected)


@pytest.mark.parametrize(
    ("flag", "value", "message", "hint"),
    [
        (BOOL, "flase", "is a bool flag; got the string 'flase'", "did you mean false?"),
        (BOOL, "true", "got the string 'true'", "write true without quotes"),
        (BOOL, "Off", "got the string 'Off'", "write false without quotes"),
        (BOOL, 1, "got int 1", "write true or false, without quotes"),
        (BOOL, 0, "got int 0", ""),
        (BOOL, None, "got null", ""),
        (INT, "5", "is an int flag; got the string '5'", "write 5 without quotes"),
        (INT, 5.0, "got float 5.0", "write 5"),
        (INT, 5.5, "got float 5.5", ""),
        (INT, True, "got true", ""),
        (INT, 11, "11 is above the maximum 10", "use a value in [0, 10]"),
        (INT, -1, "-1 is below the minimum 0", "use a value in [0, 10]"),
        (FLOAT, "0.5", "is a float flag; got the string '0.5'", "write 0.5 without quotes"),
        (FLOAT, False, "got false", ""),
        (FLOAT, math.nan, "got nan", "use a finite number"),
        (FLOAT, math.inf, "got inf", "use a finite number"),
        (FLOAT, 2, "2 is above the maximum 1.5", ""),
        (ENUM, "d", "unknown choice 'd'; expected one of a, b, c", "expected one of a, b, c"),
        (ENUM, 1, "unknown choice 1", ""),
        (STRING, 5, "is a string flag; got int 5", "quote the value"),
        (STRING, None, "got null", "quote the value"),
        (JSON, {1: "x"}, "not JSON", ""),
        (JSON, {"x": math.nan}, "not JSON", ""),
        (JSON, ("a", "b"), "not JSON", ""),
        (JSON, {"x": {1, 2}}, "not JSON", ""),
        (SCHEMA, ["a", 1], "does not match its JSON schema: at 1: 1 is not of type 'string'", ""),
        (SCHEMA, ["a", "b", "c"], "is too long", ""),
        (SCHEMA, "a", "is not of type 'array'", ""),
    ],
)
def test_values_that_do_not_fit(flag: Flag, value: Any, message: str, hint: str) -> None:
    with pytest.raises(ValidationError) as info:
        flag.coerce(value)
    (problem,) = info.value.errors
    assert message in problem.message
    assert flag.key in problem.message
    assert hint in problem.hint
    assert problem.location == "<python>"


class Route(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    primary: str
    fallbacks: list[str] = []
    temperature: float = 0.2


def test_json_flag_with_a_pydantic_model() -> None:
    flag = Flag("model.route", "json", {"primary": "gpt-4o"}, model=Route)
    assert flag.default == {"primary": "gpt-4o", "fallbacks": [], "temperature": 0.2}
    assert flag.coerce(Route(primary="x")) == {"primary": "x", "fallbacks": [], "temperature": 0.2}
    with pytest.raises(ValidationError) as info:
        flag.coerce({"primary": "x", "temprature": 1})
    assert "does not match Route: temprature" in info.value.errors[0].message
    spec = flag.to_dict()
    assert spec["model"].endswith("test_registry.Route")
    assert spec["schema"]["title"] == "Route"
    with pytest.raises(ValidationError, match="not both"):
        Flag("model.route", "json", {}, model=Route, schema={"type": "object"})


@pytest.mark.parametrize(
    ("kwargs", "code", "fragment"),
    [
        ({"type": "boolean", "default": True}, "unknown_type", "unknown flag type 'boolean'"),
        ({"type": "enum", "default": "a"}, "missing_field", "needs a list of choices"),
        ({"type": "enum", "default": "a", "choices": []}, "missing_field", "choices"),
        ({"type": "enum", "default": "a", "choices": ["a", "a"]}, "wrong_type", "distinct"),
        ({"type": "enum", "default": "1", "choices": [1, 2]}, "wrong_type", "distinct strings"),
        ({"type": "bool", "default": True, "choices": ["a"]}, "invalid", "only apply to enum"),
        ({"type": "int", "default": 1, "min": 5, "max": 2}, "invalid", "min 5 is above max 2"),
        ({"type": "int", "default": 1, "min": 0.5}, "wrong_type", "min must be a number"),
        ({"type": "string", "default": "", "max": 2}, "invalid", "only apply to int and float"),
        ({"type": "bool", "default": True, "schema": {}}, "invalid", "only applies to json"),
        (
            {"type": "json", "default": 1, "schema": {"type": 5}},
            "schema",
            "not a valid JSON schema",
        ),
        ({"type": "bool", "default": True, "binding": "warm"}, "unknown_binding", "warm"),
        ({"type": "bool", "default": True, "expires": "soon"}, "wrong_type", "invalid date"),
        ({"type": "bool", "default": True, "run_kill": True}, "invalid", "hot bool flag"),
        ({"type": "int", "default": 1, "binding": "hot", "run_kill": True}, "invalid", "hot bool"),
    ],
)
def test_invalid_definitions(kwargs: dict[str, Any], code: str, fragment: str) -> None:
    kwargs = dict(kwargs)
    with pytest.raises(ValidationError) as info:
        Flag("a.b", kwargs.pop("type"), kwargs.pop("default"), **kwargs)
    assert any(p.code == code and fragment in p.message for p in info.value.errors), info.value


def test_the_default_must_fit() -> None:
    with pytest.raises(ValidationError) as info:
        Flag("a.b", "int", 80, min=1, max=50)
    assert info.value.errors[0].code == "out_of_bounds"
    with pytest.raises(ValidationError):
        Flag("a.b", "enum", "c", choices=["a", "b"])
    with pytest.raises(ValidationError):
        Flag("a.b", "bool", "false")


def test_yaml_registry_reports_every_problem_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "flags.yaml"
    path.write_text(
        "flags:\n"
        "  a.b: {type: bool, default: flase}\n"
        "  A.c: {type: bool, default: true}\n"
        "  a.d: not a mapping\n"
        "  a.e: {type: int, default: 1, min: 3}\n",
        encoding="utf-8",
    )
    with pytest.raises(ValidationError) as info:
        FlagRegistry.from_yaml(path)
    got = sorted((p.location, p.code) for p in info.value.errors)
    assert got == [
        (f"{path}:2", "wrong_type"),
        (f"{path}:3", "invalid_key"),
        (f"{path}:4", "wrong_type"),
        (f"{path}:5", "out_of_bounds"),
    ]


def test_registry_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="file not found"):
        FlagRegistry.from_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("flags: [a.b]\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="flags: must be a mapping"):
        FlagRegistry.from_yaml(bad)


def test_expiry(registry: FlagRegistry) -> None:
    flag = registry["prompt.style"]
    assert registry.expired(dt.date(2099, 3, 1)) == []
    assert registry.expired(dt.date(2099, 3, 2)) == [flag]
    (warning,) = registry.expiry_warnings(today=dt.date(2100, 1, 1))
    assert warning.severity == "warning"
    assert warning.code == "expired"
    assert warning.path == "flags[prompt.style].expires"
    assert "expired on 2099-03-01" in warning.message
    assert Flag("a.b", "bool", True, expires=dt.datetime(2030, 1, 2, 3, 4)).expires == dt.date(
        2030, 1, 2
    )


def test_env_var_names() -> None:
    assert env_var_name("tools.refund_api.enabled") == "FF_TOOLS_REFUND_API_ENABLED"
    assert env_var_name("loop.max_iterations") == "FF_LOOP_MAX_ITERATIONS"


def test_to_dict_is_the_yaml_spec(registry: FlagRegistry) -> None:
    spec = registry.to_dict()["flags"]
    assert spec["loop.max_iterations"] == {
        "type": "int",
        "default": 8,
        "description": "Agent loop cap",
        "owner": "platform",
        "binding": "hot",
        "min": 1,
        "max": 50,
    }
    assert spec["compliance.pii_redaction"]["protected"] is True
    assert spec["agent.enabled"]["run_kill"] is True
    assert spec["prompt.style"]["expires"] == "2099-03-01"
    tagged = Flag("a.b", "bool", True, tags=["x", "y"], sensitive=True)
    assert tagged.to_dict() == {
        "type": "bool",
        "default": True,
        "tags": ["x", "y"],
        "sensitive": True,
    }


def test_keys_that_would_share_a_process_variable_are_refused() -> None:
    """FF_<KEY>: upper case, '.' and '-' as '_' — unambiguous within a registry because a
    registry refuses two keys with one variable."""
    with pytest.raises(ValidationError, match="share the process variable FF_AGENT_NEW_PLANNER"):
        FlagRegistry(
            [Flag("agent-new-planner", "bool", False), Flag("agent_new.planner", "bool", False)]
        )
    from flagmw.core.registry import env_var_name

    assert env_var_name("use_v3_style") == "FF_USE_V3_STYLE"
    assert env_var_name("agent-new-planner") == "FF_AGENT_NEW_PLANNER"
    assert env_var_name("tools.refund_api.enabled") == "FF_TOOLS_REFUND_API_ENABLED"
