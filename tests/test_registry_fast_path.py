"""The pydantic-free registry build (issue 7 §5): :func:`plain_flag_fields` accepts only
flag entries the pydantic model :class:`FlagSpec` accepts, and gives exactly the fields
the model gives; a registry built through it equals the one built through the model.
And ``check_schemas=False``: a json flag's schema is checked at its first value, and a
bad one fails that check with a located problem.
"""

from __future__ import annotations

import datetime as dt
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pydantic
import pytest
from conftest import FLAGS_YAML
from hypothesis import given, settings
from hypothesis import strategies as st

import flagmw.core.registry as registry_module
from flagmw.core.flag import Flag
from flagmw.core.flag_spec import SPEC_FIELDS, FlagFields, plain_flag_fields
from flagmw.core.flag_spec_model import FlagSpec
from flagmw.core.registry import FlagRegistry
from flagmw.core.source import Locator, load_document
from flagmw.errors import ValidationError


class _Str(str):
    pass


class _Date(dt.date):
    pass


# -- values of every field: well formed, and near misses pydantic may or may not take ----

_WORDS = st.sampled_from(["bool", "json", "int", "enum", "x", "", "pinned", "hot", "team"])
_STRINGS = _WORDS | st.text(max_size=5)
_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)
_ODD = st.sampled_from(
    [None, 0, 1, 1.5, True, False, b"bool", (), [], {}, frozenset(), dt.date(2027, 1, 1)]
) | _STRINGS.map(_Str)

_DATES = st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31))
_GOOD: dict[str, st.SearchStrategy[Any]] = {
    "type": _STRINGS,
    "default": _JSONISH,
    "description": _STRINGS,
    "owner": _STRINGS,
    "binding": _STRINGS,
    "model": _STRINGS | st.none(),
    "tags": st.lists(_STRINGS, max_size=3),
    "protected": st.booleans(),
    "run_kill": st.booleans(),
    "sensitive": st.booleans(),
    "tenant_editable": st.booleans(),
    "choices": st.none() | st.lists(_JSONISH, max_size=3),
    "min": st.none() | st.integers() | st.floats(),
    "max": st.none() | st.integers() | st.floats() | st.just(10**40),
    "schema": st.none() | st.dictionaries(st.text(max_size=4), _JSONISH, max_size=3),
    "expires": st.none() | _DATES | _DATES.map(dt.date.isoformat),
}
_BAD: dict[str, st.SearchStrategy[Any]] = {
    "tags": st.tuples(_STRINGS) | st.lists(_ODD, min_size=1, max_size=2) | _ODD,
    "choices": st.tuples(_STRINGS) | st.sets(st.integers(), max_size=2) | _ODD,
    "min": _ODD | st.text(max_size=3),
    "max": _ODD,
    "schema": _ODD
    | st.dictionaries(st.integers(), st.integers(), min_size=1, max_size=2)
    | st.dictionaries(_STRINGS.map(_Str), st.integers(), min_size=1, max_size=2)
    | st.builds(MappingProxyType, st.dictionaries(st.text(max_size=2), st.integers())),
    "expires": _ODD
    | st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30))
    | st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)).map(
        lambda d: d.replace(hour=0, minute=0, second=0, microsecond=0)
    )
    | _DATES.map(lambda d: _Date(d.year, d.month, d.day))
    | _DATES.map(lambda d: d.isoformat().replace("-", ""))
    | _DATES.map(lambda d: " " + d.isoformat())
    | _DATES.map(lambda d: d.isoformat() + "T00:00:00")
    | st.sampled_from(["2027-02-30", "2027-6-4", "0000-01-01", "2027-06-04Z", "١٢٣٤-05-06"])
    | st.integers(min_value=-(10**10), max_value=10**10),
}


@st.composite
def _specs(draw: st.DrawFn, *, well_formed: bool) -> dict[Any, Any]:
    """A flag entry: each field absent or well formed; unless ``well_formed``, then one
    or two fields (required ones included) replaced by a near miss or left out, and
    sometimes an unknown key."""
    spec: dict[Any, Any] = {}
    for name, good in _GOOD.items():
        if name in ("type", "default") or draw(st.booleans()):
            spec[name] = draw(good)
    if well_formed:
        return spec
    for name in draw(st.lists(st.sampled_from(sorted(_GOOD)), min_size=1, max_size=2)):
        if draw(st.integers(0, 5)) == 0:
            spec.pop(name, None)
        else:
            spec[name] = draw(_BAD.get(name, _ODD))
    if draw(st.integers(0, 4)) == 0:
        spec[draw(st.sampled_from(["schema_", "Type", "bogus", 1, "choice"]))] = 1
    return spec


def _same(a: Any, b: Any) -> bool:
    """Equal, of the same type, and NaN equal to NaN (nested in lists and dicts)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def _fields_equal(fast: FlagFields, slow: FlagFields) -> None:
    for name in FlagFields.__slots__:
        assert _same(getattr(fast, name), getattr(slow, name)), name


def _check(spec: dict[Any, Any]) -> FlagFields | None:
    fast = plain_flag_fields(spec)
    if fast is not None:
        slow = FlagSpec.model_validate(dict(spec)).fields()  # accepts: no error here
        _fields_equal(fast, slow)
        # lists and the schema are copies, as pydantic's
        for name in ("tags", "choices", "schema"):
            value = getattr(fast, name)
            assert value is None or value is not spec.get(name)
    return fast


@settings(max_examples=1500, deadline=None)
@given(_specs(well_formed=False))
def test_what_the_plain_check_accepts_pydantic_accepts_with_the_same_fields(
    spec: dict[Any, Any],
) -> None:
    _check(spec)


@pytest.mark.parametrize("name", sorted(_GOOD))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_a_near_miss_of_each_field_is_never_taken_differently(
    name: str, data: st.DataObject
) -> None:
    """Every field in turn: a well-formed entry with that field replaced by a near miss
    (wrong type, tuple, subclass, datetime, malformed date …) or left out."""
    spec = data.draw(_specs(well_formed=True))
    if data.draw(st.integers(0, 5)) == 0:
        spec.pop(name, None)
    else:
        spec[name] = data.draw(_BAD.get(name, _ODD))
    _check(spec)


@settings(max_examples=500, deadline=None)
@given(_specs(well_formed=True))
def test_every_well_formed_entry_takes_the_plain_path(spec: dict[Any, Any]) -> None:
    assert _check(spec) is not None, spec


@pytest.mark.parametrize(
    "spec",
    [
        {"type": "bool"},  # no default
        {"default": True},  # no type
        {"type": "bool", "default": True, "schema_": {}},
        {"type": "bool", "default": True, "tags": ("a",)},
        {"type": "int", "default": 1, "min": True},
        {"type": "bool", "default": True, "protected": 1},
        {"type": "bool", "default": True, "expires": dt.datetime(2027, 1, 1)},
        {"type": "bool", "default": True, "expires": "20270101"},
        {"type": "bool", "default": True, "expires": "2027-02-30"},
        {"type": _Str("bool"), "default": True},
        {"type": "json", "default": {}, "schema": {1: "x"}},
        {"type": "bool", "default": True, "description": None},
    ],
)
def test_anything_not_exactly_well_formed_goes_to_pydantic(spec: dict[str, Any]) -> None:
    assert plain_flag_fields(spec) is None


def test_the_fields_are_the_models_fields() -> None:
    aliases = {info.alias or name for name, info in FlagSpec.model_fields.items()}
    assert aliases == SPEC_FIELDS
    assert set(FlagFields.__slots__) == SPEC_FIELDS


# -- the registry built either way ------------------------------------------------------


def _through_pydantic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_module, "plain_flag_fields", lambda spec: None)


_DOC = {
    "flags": {
        "a.bool": {"type": "bool", "default": True, "binding": "hot", "run_kill": True},
        "a.enum": {"type": "enum", "choices": ["x", "y"], "default": "y", "tags": ["t"]},
        "a.int": {"type": "int", "default": 3, "min": 1, "max": 9, "owner": "o"},
        "a.float": {"type": "float", "default": 0.5, "min": 0, "max": 1.5, "sensitive": True},
        "a.str": {"type": "string", "default": "s", "expires": "2027-01-31"},
        "a.date": {"type": "string", "default": "s", "expires": dt.date(2027, 1, 31)},
        "a.json": {
            "type": "json",
            "default": {"k": [1]},
            "schema": {"type": "object"},
            "tenant_editable": True,
            "protected": False,
            "description": "d",
        },
        "a.tuple": {"type": "bool", "default": False, "tags": ("t",)},  # pydantic only
    }
}


@pytest.mark.parametrize("check_schemas", [True, False])
def test_a_registry_built_either_way_is_the_same(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, check_schemas: bool
) -> None:
    path = tmp_path / "flags.yaml"
    path.write_text(FLAGS_YAML)
    data, locator = load_document(path)
    for doc in (data, _DOC):
        fast = FlagRegistry.from_dict(doc, locator=locator, check_schemas=check_schemas)
        with monkeypatch.context() as m:
            _through_pydantic(m)
            slow = FlagRegistry.from_dict(doc, locator=locator)
        assert fast.fingerprint == slow.fingerprint
        assert fast.to_dict() == slow.to_dict()
        assert list(fast) == list(slow)


def _outcome(doc: dict[str, Any]) -> tuple[str, Any]:
    try:
        registry = FlagRegistry.from_dict(doc)
    except ValidationError as exc:
        return "problems", [str(p) for p in exc.problems]
    return "registry", (registry.fingerprint, registry.to_dict())


_KEYS = st.sampled_from(["a.one", "a.two", "b", "b.c", "model.x", "UPPER"])
_COMMON = {
    "description": _STRINGS,
    "owner": _STRINGS,
    "tags": st.lists(_STRINGS, max_size=2) | st.tuples(_STRINGS),
    "protected": st.booleans(),
    "sensitive": st.booleans(),
    "tenant_editable": st.booleans(),
    "expires": st.sampled_from(["2027-01-01", dt.date(2027, 1, 1), dt.datetime(2027, 1, 1)]),
    "binding": st.sampled_from(["hot", "pinned"]),
}


@st.composite
def _valid_entry(draw: st.DrawFn) -> dict[str, Any]:
    """A flag definition that is (nearly always) valid, of every type."""
    kind = draw(st.sampled_from(["bool", "int", "float", "string", "json", "enum"]))
    spec: dict[str, Any] = {"type": kind}
    if kind == "bool":
        spec["default"] = draw(st.booleans())
        if draw(st.booleans()):
            spec.update(binding="hot", run_kill=True)
    elif kind in ("int", "float"):
        spec["default"] = draw(st.integers(0, 5)) if kind == "int" else draw(st.floats(0, 5))
        spec.update(
            draw(st.fixed_dictionaries({}, optional={"min": st.just(0), "max": st.just(5)}))
        )
    elif kind == "string":
        spec["default"] = draw(_STRINGS)
    elif kind == "enum":
        spec["choices"] = draw(st.sampled_from([["x", "y"], ("x", "y")]))
        spec["default"] = "x"
    else:
        spec["default"] = draw(st.sampled_from([[], ["a"], {"k": 1}]))
        spec.update(
            draw(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "schema": st.sampled_from(
                            [{"type": "array"}, {"type": "object"}, {}, {"type": 12}]
                        )
                    },
                )
            )
        )
    spec.update(draw(st.fixed_dictionaries({}, optional=_COMMON)))
    return spec


_ENTRY = _valid_entry() | _specs(well_formed=False)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_KEYS, _ENTRY, max_size=4))
def test_any_flags_section_gives_the_same_outcome_either_way(section: dict[str, Any]) -> None:
    """The registry (fingerprint and definitions) or the located problems, exactly."""
    doc = {"flags": section}
    fast = _outcome(doc)
    with pytest.MonkeyPatch.context() as m:
        _through_pydantic(m)
        slow = _outcome(doc)
    assert fast == slow


_BAD_DOC = {
    "flags": {
        "a.one": {"type": "bool", "default": True, "protected": "yes", "bogus": 1},
        "a.two": {"type": "int", "default": 1, "min": "1", "expires": "soon"},
        "a.three": {"type": "bool"},
        "a.four": {"type": "int", "default": "5"},
        "a.five": {"type": "json", "default": 1, "schema": {"type": "string"}},
        "a.six": {"type": "json", "default": [], "schema": {"$ref": "http://x/y"}},
    }
}


def test_the_same_problems_either_way(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError) as fast:
        FlagRegistry.from_dict(_BAD_DOC)
    _through_pydantic(monkeypatch)
    with pytest.raises(ValidationError) as slow:
        FlagRegistry.from_dict(_BAD_DOC)
    assert [str(p) for p in fast.value.problems] == [str(p) for p in slow.value.problems]
    assert len(fast.value.problems) >= 7


# -- check_schemas=False ------------------------------------------------------------------


def _json_flag(schema: dict[str, Any], default: Any = (), **kw: Any) -> Flag:
    return Flag("cfg.x", "json", [] if default == () else default, schema=schema, **kw)


@pytest.mark.parametrize(
    ("schema", "default", "words"),
    [
        ({"type": 12}, [], "its JSON schema is unusable (not a valid JSON schema"),
        ({"$ref": "https://example.com/s.json"}, [], "points outside the schema"),
        ({"type": "array", "items": {"type": "string"}}, [1], "its default does not match"),
    ],
)
def test_a_deferred_schema_problem_fails_every_check_located(
    schema: dict[str, Any], default: Any, words: str
) -> None:
    with pytest.raises(ValidationError):
        _json_flag(schema, default)  # eager: refused when built
    flag = _json_flag(schema, default, check_schemas=False)  # deferred: built
    for _ in range(2):  # the first check and every later one alike
        with pytest.raises(ValidationError) as exc:
            flag.coerce(["a"])
        [problem] = exc.value.problems
        assert problem.code == "schema"
        assert words in problem.message
        assert problem.message.startswith("cfg.x cannot be checked: ")
        value, located = flag.check(["a"], Locator("f.yaml"), ("values", "cfg.x"))
        assert value is None
        assert located is not None
        assert located.path == "values[cfg.x]"
        assert words in located.message


def test_a_deferred_good_schema_checks_as_the_eager_one() -> None:
    schema = {"type": "array", "items": {"type": "string"}}
    eager, lazy = _json_flag(schema), _json_flag(schema, check_schemas=False)
    assert eager == lazy
    assert eager.to_dict() == lazy.to_dict()
    for flag in (lazy, eager):
        assert flag.coerce(["a"]) == ["a"]
        with pytest.raises(ValidationError, match=r"does not match its JSON schema: at 0"):
            flag.coerce([1])


def test_a_deferred_schema_still_refuses_a_schema_that_is_not_a_mapping() -> None:
    with pytest.raises(ValidationError, match="schema must be a mapping"):
        Flag("cfg.x", "json", [], schema=[1], check_schemas=False)  # type: ignore[arg-type]


def test_a_registry_with_a_broken_schema_loads_only_with_deferred_checks() -> None:
    doc = {
        "flags": {
            "a.on": {"type": "bool", "default": True},
            "a.cfg": {"type": "json", "default": [], "schema": {"type": 12}},
        }
    }
    with pytest.raises(ValidationError, match=r"flags\[a.cfg\].schema: not a valid JSON"):
        FlagRegistry.from_dict(doc)
    registry = FlagRegistry.from_dict(doc, check_schemas=False)
    assert registry["a.on"].coerce(False) is False
    with pytest.raises(ValidationError, match=r"a\.cfg cannot be checked"):
        registry["a.cfg"].coerce([])


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return {m.split(".")[0] for m in done.stdout.split()}


def test_a_well_formed_registry_loads_without_pydantic_or_jsonschema(tmp_path: Path) -> None:
    path = tmp_path / "flags.yaml"
    path.write_text(FLAGS_YAML)
    load: Callable[[str], str] = lambda extra: (  # noqa: E731
        "from flagmw.core.registry import FlagRegistry\n"
        f"FlagRegistry.from_yaml({str(path)!r}{extra})"
    )
    deferred = _modules_after(load(", check_schemas=False"))
    assert "pydantic" not in deferred
    assert "jsonschema" not in deferred
    eager = _modules_after(load(""))
    assert "pydantic" not in eager  # the schema of model.fallbacks is checked …
    assert "jsonschema" in eager  # … with jsonschema
    assert "pydantic" in _modules_after(
        "from flagmw.core.registry import FlagRegistry\n"
        "FlagRegistry.from_dict({'flags': {'a': {'type': 'bool', 'default': True,"
        " 'tags': ('t',)}}})"
    )


def test_pydantic_errors_are_still_pydantic() -> None:
    with pytest.raises(pydantic.ValidationError):
        FlagSpec.model_validate({"type": 1, "default": 1})
